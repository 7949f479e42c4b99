//! The feed's filters and search, kept in the URL's query so a reload or a shared link keeps them.

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ListMessagesRequestSchema, type ListMessagesRequest } from "./gen/messaging/v1/feed_pb.js";
import { CHANNELS, DIRECTIONS, STATUSES, TYPES } from "./format.js";

/** What the URL holds: each filter by its option's key, dates as yyyy-mm-dd, the search text and the open thread. */
export interface View {
  direction: string;
  channel: string;
  type: string;
  status: string;
  since: string;
  until: string;
  q: string;
  thread: string;
}

const KEYS: (keyof View)[] = ["direction", "channel", "type", "status", "since", "until", "q", "thread"];

export function read(search: string = location.search): View {
  const params = new URLSearchParams(search);
  const view = {} as View;
  for (const key of KEYS) view[key] = params.get(key) ?? "";
  return view;
}

export function write(view: View, push = true): void {
  const params = new URLSearchParams();
  for (const key of KEYS) if (view[key]) params.set(key, view[key]);
  const query = params.toString();
  const url = location.pathname + (query ? `?${query}` : "");
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** A filter option's URL key: the label, lower case, words joined by `_` ("on_my_way"). */
export function key(text: string): string {
  return text.toLowerCase().replaceAll(" ", "_");
}

function pick<T>(table: [T, string][], wanted: string): T[] {
  const found = table.find(([, text]) => key(text) === wanted);
  return found ? [found[0]] : [];
}

/** Midnight at the start of a yyyy-mm-dd day in this browser's zone; `plusDays` moves it. */
function day(value: string, plusDays = 0): Date | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return undefined;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + plusDays);
}

/** The ListMessages request for a view: `until` includes its whole day. */
export function request(view: View, pageToken = ""): ListMessagesRequest {
  const since = day(view.since);
  const until = day(view.until, 1);
  return create(ListMessagesRequestSchema, {
    pageSize: 50,
    pageToken,
    directions: pick(DIRECTIONS, view.direction),
    channels: pick(CHANNELS, view.channel),
    types: pick(TYPES, view.type),
    statuses: pick(STATUSES, view.status),
    since: since && timestampFromDate(since),
    until: until && timestampFromDate(until),
    query: view.q.trim(),
  });
}

/** Whether any filter or search narrows the feed. */
export function narrowed(view: View): boolean {
  return KEYS.some((k) => k !== "thread" && view[k] !== "");
}
