-- Response cache hits (x-perpetual-cache): answered without a provider call, so cost 0; what the original call
-- cost is kept as the saving. Hits are not sent to Polar.
alter table public.usage_logs add column cache_hit text check (cache_hit in ('exact', 'semantic'));
alter table public.usage_logs add column saved_cost_usd numeric(16, 8) not null default 0;
