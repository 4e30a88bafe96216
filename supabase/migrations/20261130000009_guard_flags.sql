-- The abuse and prompt-injection guard: the rules a request was flagged for (comma-separated), on its usage row.
-- Blocked requests carry them too, with status 400 and error code content_policy_violation.
alter table public.usage_logs add column guard_flags text;
