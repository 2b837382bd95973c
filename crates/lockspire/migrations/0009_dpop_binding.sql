-- DPoP (RFC 9449): the RFC 7638 thumbprint of the key an access or refresh token is bound to.
-- A token is bound to a certificate (cnf_x5t) or to a DPoP key (cnf_jkt), never both.
ALTER TABLE tokens ADD COLUMN cnf_jkt TEXT;
