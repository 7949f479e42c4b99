//! The FeedService and TemplateService clients: gRPC-Web to the origin the page came from, the
//! signed-in token on every call. The token lives in this tab's sessionStorage only; the server
//! never logs it.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { FeedService } from "./gen/messaging/v1/feed_pb.js";
import { TemplateService } from "./gen/messaging/v1/templates_pb.js";

const TOKEN_KEY = "messages.token";

export type Feed = Client<typeof FeedService>;
export type Templates = Client<typeof TemplateService>;

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value: string): void {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A token handed over in the URL's fragment (`#token=…`, never sent to a server) is taken and wiped from the address bar. */
export function adoptTokenFromFragment(): void {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const handed = fragment.get("token");
  if (handed) {
    signIn(handed);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

const bearer: Interceptor = (next) => async (request) => {
  const current = token();
  if (current) request.header.set("authorization", `Bearer ${current}`);
  return next(request);
};

const transport = () => createGrpcWebTransport({ baseUrl: location.origin, interceptors: [bearer] });

export function feedClient(): Feed {
  return createClient(FeedService, transport());
}

export function templateClient(): Templates {
  return createClient(TemplateService, transport());
}

/** Whether the signed-in token's role may change the account's templates (owner or office; a
 * token naming no role reads only). Only a hint for the page: the server decides. */
export function managesAccount(): boolean {
  try {
    const payload = (token() ?? "").split(".")[1] ?? "";
    const json = atob(payload.replaceAll("-", "+").replaceAll("_", "/"));
    const role: unknown = JSON.parse(json).role;
    return role === "owner" || role === "office";
  } catch {
    return false;
  }
}

/** What went wrong, in words for the page, and whether signing in again is the cure. */
export function explain(error: unknown): { text: string; signIn: boolean } {
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.Unauthenticated:
      return { text: "Your sign-in has expired or is not valid. Sign in again with a fresh token.", signIn: true };
    case Code.Unavailable:
    case Code.Unknown:
      return { text: "The Messages service cannot be reached. Check your connection; the page retries when you reload.", signIn: false };
    case Code.PermissionDenied:
      return { text: `Not allowed: ${e.rawMessage}`, signIn: false };
    case Code.ResourceExhausted:
      return { text: `Too busy right now: ${e.rawMessage}. Try again in a moment.`, signIn: false };
    default:
      return { text: e.rawMessage || e.message, signIn: false };
  }
}
