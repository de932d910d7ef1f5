-- Reproduces crates/kamiyo-store/src/incidents/postgres.rs list() (commit b72677a) for the filtered listing (b): the total.
SELECT count(*) FROM exploits e WHERE EXISTS (SELECT 1 FROM exploit_chains c WHERE c.exploit_id = e.id AND c.chain = :chain::text) AND e.amount_usd >= :min_amount::text::numeric AND e.occurred_at >= :from::text::timestamptz AND e.occurred_at <= :to::text::timestamptz;
