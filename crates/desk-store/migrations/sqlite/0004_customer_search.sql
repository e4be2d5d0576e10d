-- The customer searches' part-of matches (LIKE '%x%' on customers.name_key and
-- customers.phone_digits) scan the customers table on SQLite: about 10 ms at 100,000
-- customers (docs/benchmarks.md), so there is no FTS5 trigram table here. The PostgreSQL
-- migration of the same name adds pg_trgm indexes.
-- Kept in step with ../postgres/0004_customer_search.sql.
SELECT 1;
