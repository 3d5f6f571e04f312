-- Operator keys (the web console, `rill keys create --scope operator`): a third scope beside
-- merchant and tap, like tap owned by no merchant. Numbered 005 to stay clear of other branches'
-- 003/004; migrations apply by missing version, so the gap is harmless.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('merchant', 'tap', 'operator'));
