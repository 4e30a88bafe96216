export type Row = Record<string, unknown>;

/** What both a database and an open transaction can do. */
export interface SqlExecutor {
  /** One parameterised statement; returns its rows as plain objects. */
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** One or more statements without parameters (migrations, scripts). */
  exec(sql: string): Promise<void>;
}

export interface Database extends SqlExecutor {
  readonly kind: "postgres" | "pglite";
  /** Runs fn in one transaction: committed when fn resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Runs fn in a transaction as role `authenticated` with that user's JWT claims, the way PostgREST does, so
   * row-level security decides what fn can see. Both settings are transaction-local and vanish at commit.
   */
  asUser<T>(userId: string, fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
