import type { ModelPricing, ProviderSettings } from "../config";
import { NotFoundError, ServiceUnavailableError } from "../errors";
import type { Principal } from "../identity";
import type { VllmPool } from "../local/pool";
import type { ProviderKeys } from "../provider-keys";
import { type CallTarget, isMock, type Route, routeModel, UpstreamError } from "../providers";

/** A call that succeeded, and the hold it keeps on its backend until the response is fully sent. */
export interface Placed<T> {
  value: T;
  release: () => void;
}

/** A route made ready for its calls: what they need is resolved (the user's provider key, still sealed). */
export interface Destination {
  /** Runs `invoke` against a target; local mode retries on another backend before the first byte. */
  place<T>(invoke: (target: CallTarget) => Promise<T>): Promise<Placed<T>>;
}

/** Where a model's calls go: proxy mode (the user's own provider key) or local mode (a pool of vLLM servers). */
export interface Targets {
  /** Throws 404 model_not_found for a model nobody serves. */
  route(model: string): Route;
  /**
   * Resolves what the route's calls need before any other work is done for the request: a missing provider key
   * is a 400 here, before memory recall. The key stays sealed until `place` makes the call.
   */
  prepare(principal: Principal, route: Route): Promise<Destination>;
  /** Model ids the caller can use (GET /v1/models). */
  models(principal: Principal): Promise<Array<{ id: string; owned_by: string }>>;
}

const noRelease = () => {};

/** The mock provider's destination (mock_response): no key, no backend. */
const keyless = (route: Route): Destination => ({
  place: async (invoke) => ({
    value: await invoke({ provider: route.provider.name, baseUrl: "", apiKey: "", model: route.model }),
    release: noRelease,
  }),
});

export class ProxyTargets implements Targets {
  constructor(
    private readonly providers: ReadonlyMap<string, ProviderSettings>,
    private readonly pricing: ReadonlyMap<string, ModelPricing>,
    private readonly providerKeys: ProviderKeys,
  ) {}

  route(model: string): Route {
    return routeModel(model, this.providers, this.pricing);
  }

  async prepare(principal: Principal, route: Route): Promise<Destination> {
    if (isMock(route.provider)) return keyless(route);
    const key = await this.providerKeys.resolve(principal.userId, route.provider.name);
    return {
      place: async (invoke) => {
        const target = { provider: route.provider.name, baseUrl: route.provider.baseUrl, model: route.model };
        return { value: await invoke({ ...target, apiKey: key.reveal() }), release: noRelease };
      },
    };
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

  async prepare(_principal: Principal, route: Route): Promise<Destination> {
    if (isMock(route.provider)) return keyless(route);
    return { place: (invoke) => this.place(route, invoke) };
  }

  private async place<T>(route: Route, invoke: (target: CallTarget) => Promise<T>): Promise<Placed<T>> {
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
