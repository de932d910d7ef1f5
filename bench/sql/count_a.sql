-- Reproduces crates/kamiyo-store/src/incidents/postgres.rs list() (commit b72677a) for GET /api/exploits?limit=50: the total.
SELECT count(*) FROM exploits e ;
