-- Standard claims (OIDC Core §5.1) the user approved through a `claims` request (§5.5) beyond
-- what the consented scopes release: a JSON list of claim names. Remembered consent covers a
-- later request only when its claims are covered too.
ALTER TABLE consents ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';
