-- The product's core tables. Every table has row-level security with owner-only policies (auth.uid() = user_id);
-- the server reads and writes user data through asUser (role authenticated + JWT claims), and uses its own
-- connection role only where no user context can exist (API-key lookup, admin, background workers).
-- Privileges are granted column by column where a user must not be able to raise their own tier or limits.

create table public.users (
  id uuid primary key default gen_random_uuid(),
  email text,
  tier text not null default 'free',
  is_active boolean not null default true,
  current_balance_usd numeric(16, 8) not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index users_email_unique on public.users (lower(email));

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  key_hash text not null unique,
  key_prefix text not null,
  key_last4 text not null,
  name text not null default 'default',
  -- null: the user's tier and the tier's limits apply.
  tier text,
  rate_limit_per_minute integer check (rate_limit_per_minute > 0),
  rate_limit_per_day integer check (rate_limit_per_day > 0),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  last_used timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz
);
create index api_keys_user_id_idx on public.api_keys (user_id);

create table public.usage_logs (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  api_key_id uuid references public.api_keys (id) on delete set null,
  request_id text not null unique,
  endpoint text not null,
  provider text,
  model text not null,
  prompt_tokens integer not null default 0,
  completion_tokens integer not null default 0,
  cached_tokens integer not null default 0,
  total_tokens integer not null default 0,
  cost_usd numeric(16, 8) not null default 0,
  latency_ms integer,
  status_code integer,
  retrieval_calls integer not null default 0,
  retrieval_latency_ms integer not null default 0,
  created_at timestamptz not null default now()
);
create index usage_logs_user_created_idx on public.usage_logs (user_id, created_at desc);
create index usage_logs_created_idx on public.usage_logs (created_at);

create table public.user_provider_keys (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  provider text not null,
  -- "<key id>:<base64 nonce|ciphertext|tag>", AES-256-GCM with AAD = user id + provider.
  encrypted_key text not null,
  key_last4 text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (user_id, provider)
);

alter table public.users enable row level security;
alter table public.api_keys enable row level security;
alter table public.usage_logs enable row level security;
alter table public.user_provider_keys enable row level security;

create policy "Users can view own profile" on public.users
  for select to authenticated using (auth.uid() = id);
create policy "Users can delete own profile" on public.users
  for delete to authenticated using (auth.uid() = id);

create policy "Users can manage own API keys" on public.api_keys
  for all to authenticated using (auth.uid() = user_id) with check (auth.uid() = user_id);

create policy "Users can view own usage" on public.usage_logs
  for select to authenticated using (auth.uid() = user_id);
create policy "Users can delete own usage" on public.usage_logs
  for delete to authenticated using (auth.uid() = user_id);

create policy "Users can manage own provider keys" on public.user_provider_keys
  for all to authenticated using (auth.uid() = user_id) with check (auth.uid() = user_id);

-- Supabase grants everything to anon and authenticated by default; start from nothing and grant what is needed.
revoke all on public.users, public.api_keys, public.usage_logs, public.user_provider_keys from anon, authenticated;
grant select, delete on public.users to authenticated;
grant select, delete on public.api_keys to authenticated;
grant insert (user_id, key_hash, key_prefix, key_last4, name, expires_at) on public.api_keys to authenticated;
grant update (name, is_active, revoked_at) on public.api_keys to authenticated;
grant select, delete on public.usage_logs to authenticated;
grant select, insert, update, delete on public.user_provider_keys to authenticated;
grant all on public.users, public.api_keys, public.usage_logs, public.user_provider_keys to service_role;
