-- The customer searches' part-of matches (LIKE '%x%' on customers.name_key and
-- customers.phone_digits: 顧客管理, the 顧客 button and the chat list's 顧客名 / 電話番号
-- filters) cannot use a b-tree. With pg_trgm they use these trigram indexes when the typed
-- part has 3 characters or more (a 2-character name still scans: about 7 ms at 100,000
-- customers, docs/benchmarks.md). Where the extension cannot be created (not installed, or
-- no right to), the searches scan the table and still work.
-- Kept in step with ../sqlite/0004_customer_search.sql.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX customers_name_key_trgm ON customers USING gin (name_key gin_trgm_ops);
    CREATE INDEX customers_phone_digits_trgm ON customers USING gin (phone_digits gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%): customer searches will scan the table', SQLERRM;
END
$$;
