-- 0007_claim_source_urls (PostgreSQL 15)
--
-- Two claims that cite the same page (a post-mortem, an article, a tweet) report one
-- hack, whatever names they give it: a news site's editorial title ("Plenty of Phish")
-- meets the protocol's name that way (issue #15, docs/DEDUP.md "When is a claim the
-- same incident?"). A claim's candidates are looked up by its page's URL, in the forms a
-- source may have written it; this index serves that lookup.
--
-- Expand only: the previous binary neither reads nor writes it. Built in the migration's
-- transaction (exploit_sources holds a few rows per incident; a table of millions would
-- want CREATE INDEX CONCURRENTLY in a migration of its own, marked no-transaction).
-- The SQLite twin is ../sqlite/0007_claim_source_urls.sql.

CREATE INDEX exploit_sources_source_url_idx ON exploit_sources (source_url);
