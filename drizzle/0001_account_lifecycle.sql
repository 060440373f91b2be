ALTER TABLE `users` ADD `disabled_at` integer;
--> statement-breakpoint
-- Credentials must not outlive their user, whatever deleted the row: the foreign keys' cascades only
-- run where PRAGMA foreign_keys is on, which a sqlite3 shell leaves off. Triggers always run.
CREATE TRIGGER `users_delete_credentials` AFTER DELETE ON `users` BEGIN
	DELETE FROM `sessions` WHERE `user_id` = OLD.`id`;
	DELETE FROM `api_keys` WHERE `user_id` = OLD.`id`;
END;
--> statement-breakpoint
-- Rows orphaned before this migration (a user deleted from a shell with foreign keys off) go now.
DELETE FROM `sessions` WHERE `user_id` NOT IN (SELECT `id` FROM `users`);
--> statement-breakpoint
DELETE FROM `api_keys` WHERE `user_id` NOT IN (SELECT `id` FROM `users`);
