-- Per-user settings a user changes themselves (PATCH /v1/me/settings): the response cache's default for their
-- requests (null: the deployment's RESPONSE_CACHE). Users may update this column of their own row and no other:
-- tier, balance and the rest stay the server's.
alter table public.users add column response_cache text check (response_cache in ('off', 'exact', 'semantic'));

create policy "Users can update own settings" on public.users
  for update to authenticated using (auth.uid() = id) with check (auth.uid() = id);
grant update (response_cache) on public.users to authenticated;
