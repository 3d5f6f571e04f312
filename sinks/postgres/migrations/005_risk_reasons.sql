-- The risk stage's reasons (its top contributing features, in words, as a JSON array of strings)
-- and the version of the decision rules it decided under (0: topology.yaml's). Numbered after the
-- issue that adds them (#15) so parallel branches' migrations do not collide on a number.
ALTER TABLE transactions ADD COLUMN IF NOT EXISTS risk_reasons jsonb;
ALTER TABLE transactions ADD COLUMN IF NOT EXISTS risk_rules_version integer;
