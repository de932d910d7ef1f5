-- Reproduces crates/kamiyo-store/src/incidents/query.rs count_statement() for GET /api/exploits?limit=50: the total (unchanged since b72677a).
SELECT count(*) FROM exploits e ;
