import type { ModelPricing, ProviderSettings } from "../config";
import { NotFoundError, ServiceUnavailableError } from "../errors";
import type { Principal } from "../identity";
import type { VllmPool } from "../local/pool";
import type { ProviderKeys } from "../provider-keys";
import { type CallTarget, type Route, routeModel, UpstreamError } from "../providers";

/** A call that succeeded, and the hold it keeps on its backend until the response is fully sent. */
export interface Placed<T> {
  value: T;
  release: () => void;
}

/** Where a model's calls go: proxy mode (the user's own provider key) or local mode (a pool of vLLM servers). */
export interface Targets {
  /** Throws 404 model_not_found for a model nobody serves. */
  route(model: string): Route;
  /** Runs `invoke` against a target for the route; local mode retries on another backend before the first byte. */
  place<T>(principal: Principal, route: Route, invoke: (target: CallTarget) => Promise<T>): Promise<Placed<T>>;
  /** Model ids the caller can use (GET /v1/models). */
  models(principal: Principal): Promise<Array<{ id: string; owned_by: string }>>;
}

const noRelease = () => {};

export class ProxyTargets implements Targets {
  constructor(
    private readonly providers: ReadonlyMap<string, ProviderSettings>,
    private readonly pricing: ReadonlyMap<string, ModelPricing>,
    private readonly providerKeys: ProviderKeys,
  ) {}

  route(model: string): Route {
    return routeModel(model, this.providers, this.pricing);
  }

  async place<T>(principal: Principal, route: Route, invoke: (target: CallTarget) => Promise<T>): Promise<Placed<T>> {
    const apiKey = await this.providerKeys.reveal(principal.userId, route.provider.name);
    const value = await invoke({
      provider: route.provider.name,
      baseUrl: route.provider.baseUrl,
      apiKey,
      model: route.model,
    });
    return { value, release: noRelease };
  }

  async models(principal: Principal) {
    const withKeys = new Set((await this.providerKeys.list(principal.userId)).map((k) => k.provider));
    return [...this.pricing.entries()]
      .filter(([, m]) => withKeys.has(m.provider))
      .map(([id, m]) => ({ id, owned_by: m.provider }));
  }
}

const VLLM: ProviderSettings = { name: "vllm", kind: "openai-compatible", baseUrl: "", modelPrefixes: [] };

/** Worth another backend: it could not be reached, was overloaded, or failed on its side. */
const retryable = (error: unknown) =>
  error instanceof UpstreamError && (error.status === 0 || error.status === 429 || error.status >= 500);

export class LocalTargets implements Targets {
  constructor(
    private readonly pool: VllmPool,
    private readonly defaultModel: string | undefined,
    private readonly maxRetries: number,
  ) {}

  route(model: string): Route {
    const served = this.pool.models();
    if (served.includes(model) || (served.length === 0 && model === this.defaultModel))
      return { provider: VLLM, model };
    throw new NotFoundError(
      `The model '${model}' is not served here. Available: ${served.join(", ") || "none right now"}.`,
      { code: "model_not_found", param: "model" },
    );
  }

  async place<T>(_principal: Principal, route: Route, invoke: (target: CallTarget) => Promise<T>): Promise<Placed<T>> {
    const tried = new Set<ReturnType<VllmPool["pick"]> & object>();
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      const backend = this.pool.pick(tried);
      if (!backend) break;
      tried.add(backend);
      backend.inFlight++;
      let released = false;
      const release = () => {
        if (!released) backend.inFlight--;
        released = true;
      };
      try {
        const value = await invoke({
          provider: VLLM.name,
          baseUrl: backend.url,
          apiKey: this.pool.apiKey ?? "",
          model: route.model,
        });
        return { value, release };
      } catch (error) {
        release();
        if (!retryable(error)) throw error;
        if (error instanceof UpstreamError && error.status !== 429) this.pool.reportFailure(backend);
        lastError = error;
      }
    }
    throw (
      lastError ??
      new ServiceUnavailableError("No local model server is available right now.", { code: "no_backend_available" })
    );
  }

  async models() {
    return this.pool.models().map((id) => ({ id, owned_by: "vllm" }));
  }
}
