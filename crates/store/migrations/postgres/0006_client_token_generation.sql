-- Access tokens name their client's token generation; rotating the secret moves it on, so
-- older tokens are refused (issue 22). Tokens issued before carry none: generation 0.
ALTER TABLE api_clients ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
