-- Certificates obtained over ACME and their private keys (src/tls/store.ts), one row per managed name;
-- the ACME account key is the settings row `acme_account_key`. Times are Unix seconds.
CREATE TABLE `tls_certificates` (
	`name` text PRIMARY KEY NOT NULL,
	`directory_url` text NOT NULL,
	`cert_pem` text NOT NULL,
	`key_pem` text NOT NULL,
	`not_before` integer NOT NULL,
	`not_after` integer NOT NULL,
	`issuer` text NOT NULL,
	`on_demand` integer DEFAULT false NOT NULL,
	`updated_at` integer NOT NULL
);
