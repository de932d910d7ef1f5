use super::*;

use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn addresses_are_classified_as_the_ranges_say() {
    let forbidden = [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.8.9.10",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.10",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1::808:808",
        "2002:7f00:1::",
        "2002:c0a8:101::1",
        "2001::1",
        "2001:2::1",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
    ];
    let allowed = [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
    ];
    for text in forbidden {
        let ip: IpAddr = text.parse().unwrap();
        assert!(is_forbidden(ip), "{text} should be forbidden");
    }
    for text in allowed {
        let ip: IpAddr = text.parse().unwrap();
        assert!(!is_forbidden(ip), "{text} should be allowed");
    }
}

#[test]
fn check_url_accepts_public_http_and_https_targets() {
    for url in [
        "https://hooks.example.com/kamiyo?token=abc",
        "http://example.org:8080/path",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
    ] {
        let parsed = check_url(url, false).unwrap();
        assert_eq!(
            parsed.as_str().trim_end_matches('/'),
            url.trim_end_matches('/')
        );
    }
}

#[test]
fn check_url_refuses_other_schemes_missing_hosts_and_credentials() {
    let scheme = check_url("ftp://example.com/file", false).unwrap_err();
    assert!(
        matches!(&scheme, TargetError::Scheme(s) if s == "ftp"),
        "{scheme:?}"
    );
    assert!(matches!(
        check_url("file:///etc/passwd", false),
        Err(TargetError::Scheme(_))
    ));
    assert!(matches!(
        check_url("gopher://example.com/", false),
        Err(TargetError::Scheme(_))
    ));
    assert!(matches!(
        check_url("not a url", false),
        Err(TargetError::Invalid(_))
    ));
    assert!(matches!(
        check_url("/relative/path", false),
        Err(TargetError::Invalid(_))
    ));
    assert!(matches!(
        check_url("http://", false),
        Err(TargetError::Invalid(_))
    ));
    let credentials = [
        "https://user:hunter2@example.com/",
        "https://user@example.com/",
        "https://:hunter2@example.com/",
    ];
    for url in credentials {
        let error = check_url(url, false).unwrap_err();
        assert!(
            matches!(error, TargetError::Credentials),
            "{url}: {error:?}"
        );
        assert!(!error.to_string().contains("hunter2"));
    }
}

#[test]
fn check_url_refuses_private_ip_literals_in_every_spelling() {
    for url in [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5:5432/",
        "http://[fd00::1]/",
        "http://0.0.0.0:8080/",
    ] {
        let error = check_url(url, false).unwrap_err();
        assert!(
            matches!(error, TargetError::Forbidden(_)),
            "{url}: {error:?}"
        );
        assert!(check_url(url, true).is_ok(), "{url} with allow_private");
    }
    for url in [
        "http://localhost:8080/",
        "http://LOCALHOST./",
        "http://api.localhost/",
    ] {
        let error = check_url(url, false).unwrap_err();
        assert!(matches!(error, TargetError::Localhost), "{url}: {error:?}");
        assert!(check_url(url, true).is_ok(), "{url} with allow_private");
    }
}

#[test]
fn check_url_errors_do_not_echo_the_query_string() {
    for url in [
        "http://127.0.0.1/hook?token=s3cr3t-token",
        "ftp://example.com/?token=s3cr3t-token",
        "https://user:pw@example.com/?token=s3cr3t-token",
        "http://exa mple.com/?token=s3cr3t-token",
    ] {
        let error = check_url(url, false).unwrap_err();
        let shown = format!("{error} / {error:?}");
        assert!(!shown.contains("s3cr3t"), "{url}: {shown}");
    }
}

/// What the loopback server answers, and the request lines it saw.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

/// A minimal HTTP/1.1 server on 127.0.0.1 that answers every request with `response`.
async fn serve(response: impl Fn(u16) -> Vec<u8> + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let response = Arc::new(response);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let line = text.lines().next().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(line);
                let _ = stream.write_all(&response(port)).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { port, requests }
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

fn client(allow_private_targets: bool) -> reqwest::Client {
    http_client(&ClientConfig {
        allow_private_targets,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
    let server = serve(|_| ok_response(b"ok")).await;
    let url = format!("http://localhost:{}/", server.port);

    let error = client(false)
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap_err();
    let chain = error_chain(&error);
    assert!(
        chain.contains("resolves only to private addresses"),
        "{chain}"
    );
    assert!(
        server.requests.lock().unwrap().is_empty(),
        "the server was reached"
    );

    let response = client(true).post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_resolver_keeps_public_addresses_and_drops_private_ones() {
    // IP literals resolve to themselves without a DNS query, so this stays offline.
    let guarded = GuardedResolver::default();
    let public = guarded.resolve_host("8.8.8.8").await.unwrap();
    assert_eq!(public, vec!["8.8.8.8:0".parse::<SocketAddr>().unwrap()]);
    let private = guarded.resolve_host("10.1.2.3").await.unwrap_err();
    assert!(
        matches!(private, ResolveError::OnlyForbidden { .. }),
        "{private:?}"
    );
    let open = GuardedResolver {
        allow_private: true,
    };
    assert_eq!(open.resolve_host("10.1.2.3").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_redirect_is_returned_not_followed() {
    let server = serve(|port| {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/elsewhere\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    })
    .await;
    let url = format!("http://localhost:{}/hook", server.port);
    let response = client(true).post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 302);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests, vec!["POST /hook HTTP/1.1".to_owned()]);
}

#[tokio::test]
async fn the_client_sends_its_user_agent() {
    let seen = Arc::new(Mutex::new(String::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = seen.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        *record.lock().unwrap() = String::from_utf8_lossy(&head).to_lowercase();
        stream.write_all(&ok_response(b"")).await.unwrap();
    });
    let url = format!("http://localhost:{port}/");
    client(true).get(&url).send().await.unwrap();
    let head = seen.lock().unwrap().clone();
    assert!(head.contains("user-agent: kamiyo-webhooks/1.0"), "{head}");
}

#[tokio::test]
async fn a_long_body_is_cut_at_the_limit_and_flagged() {
    let server = serve(|_| ok_response(&[b'x'; 100_000])).await;
    let url = format!("http://localhost:{}/", server.port);
    let response = client(true).get(&url).send().await.unwrap();
    let (body, truncated) = read_body_limited(response, DEFAULT_BODY_LIMIT).await;
    assert!(truncated);
    assert_eq!(body.len(), DEFAULT_BODY_LIMIT);
}

#[tokio::test]
async fn a_body_within_the_limit_is_read_whole() {
    for size in [0, 10, DEFAULT_BODY_LIMIT] {
        let server = serve(move |_| ok_response(&vec![b'y'; size])).await;
        let url = format!("http://localhost:{}/", server.port);
        let response = client(true).get(&url).send().await.unwrap();
        let (body, truncated) = read_body_limited(response, DEFAULT_BODY_LIMIT).await;
        assert!(!truncated, "size {size}");
        assert_eq!(body.len(), size);
    }
}

#[tokio::test]
async fn a_character_cut_by_the_limit_is_dropped_and_invalid_bytes_are_replaced() {
    // "é" is two bytes; a limit of 5 cuts the third "é" in half.
    let server = serve(|_| ok_response("ééé".as_bytes())).await;
    let url = format!("http://localhost:{}/", server.port);
    let response = client(true).get(&url).send().await.unwrap();
    let (body, truncated) = read_body_limited(response, 5).await;
    assert_eq!((body.as_str(), truncated), ("éé", true));

    let server = serve(|_| ok_response(b"ok\xffok")).await;
    let url = format!("http://localhost:{}/", server.port);
    let response = client(true).get(&url).send().await.unwrap();
    let (body, truncated) = read_body_limited(response, 100).await;
    assert_eq!((body.as_str(), truncated), ("ok\u{fffd}ok", false));
}
