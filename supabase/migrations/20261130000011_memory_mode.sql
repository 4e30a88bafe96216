-- The user's own default memory mode for requests without x-perpetual-memory (null: the deployment's
-- MEMORY_DEFAULT_MODE), set from the account console or PATCH /v1/me/settings. Users may update it on their own
-- row, like response_cache.
alter table public.users add column memory_mode text check (memory_mode in ('on', 'off', 'read-only', 'write-only'));

grant update (memory_mode) on public.users to authenticated;
