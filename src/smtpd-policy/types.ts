/** What the policy door asks: one request's attributes, answered synchronously from memory. */
export interface PolicyService {
  /** The action text for Postfix (e.g. `DUNNO`, `DEFER_IF_PERMIT 4.7.1 ...`, `552 5.2.2 ...`). */
  answer(request: ReadonlyMap<string, string>): string;
}
