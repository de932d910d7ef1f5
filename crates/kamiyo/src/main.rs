use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match kamiyo::run(kamiyo::cli::Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kamiyo: {error:#}");
            ExitCode::FAILURE
        }
    }
}
