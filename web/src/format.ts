//! How the page words the API's values: enum names, failure reasons, times, the customer column,
//! which template is which.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Channel, Direction, MessageStatus, MessageType, type Message } from "./gen/messaging/v1/feed_pb.js";
import type { Template } from "./gen/messaging/v1/templates_pb.js";

export { MessageStatus };

export const DIRECTIONS: [Direction, string][] = [
  [Direction.OUTBOUND, "Outbound"],
  [Direction.INBOUND, "Inbound"],
];

export const CHANNELS: [Channel, string][] = [
  [Channel.SMS, "SMS"],
  [Channel.EMAIL, "Email"],
];

export const TYPES: [MessageType, string][] = [
  [MessageType.APPOINTMENT_CONFIRMATION, "Appointment confirmation"],
  [MessageType.REMINDER, "Reminder"],
  [MessageType.ON_MY_WAY, "On my way"],
  [MessageType.JOB_COMPLETED, "Job completed"],
  [MessageType.PAYMENT_LINK, "Payment link"],
  [MessageType.PAYMENT_RECEIPT, "Payment receipt"],
  [MessageType.MANUAL, "Manual"],
  [MessageType.REPLY, "Reply"],
];

export const STATUSES: [MessageStatus, string][] = [
  [MessageStatus.QUEUED, "Queued"],
  [MessageStatus.SENT, "Sent"],
  [MessageStatus.DELIVERED, "Delivered"],
  [MessageStatus.FAILED, "Failed"],
  [MessageStatus.OPENED, "Opened"],
  [MessageStatus.READ, "Read"],
  [MessageStatus.RECEIVED, "Received"],
  [MessageStatus.UNKNOWN, "Unknown"],
];

export function label<T>(table: [T, string][], value: T): string {
  return table.find(([v]) => v === value)?.[1] ?? "—";
}

/** A normalised failure reason ("opted_out") as words ("opted out"). */
export function reason(code: string): string {
  return code.replaceAll("_", " ");
}

/** The Status column: the status, and the honest word when delivery is not known. */
export function statusText(m: Message): string {
  if (m.status === MessageStatus.FAILED) return m.failureReason ? `Failed: ${reason(m.failureReason)}` : "Failed";
  if (m.status === MessageStatus.UNKNOWN) return "Unknown: the provider never confirmed the send";
  if (m.deliveryUnknown) return "Sent, delivery unknown";
  return label(STATUSES, m.status);
}

/** How a status reads: failed (red), unknown (amber), queued (grey) or ok. */
export function statusKind(m: Message): "failed" | "unknown" | "queued" | "ok" {
  if (m.status === MessageStatus.FAILED) return "failed";
  if (m.status === MessageStatus.UNKNOWN || m.deliveryUnknown) return "unknown";
  if (m.status === MessageStatus.QUEUED) return "queued";
  return "ok";
}

/** The status text's CSS classes. */
export function statusClass(m: Message): string {
  return `status ${statusKind(m)}`;
}

/** Name, then the number or address the message went to or came from. */
export function customerText(m: Message): [string, string] {
  const c = m.customer;
  const address = m.channel === Channel.EMAIL || !c?.phone ? (c?.email ?? "") : c.phone;
  const name = c?.name || (m.senderUnverified ? "Unverified sender" : "Unknown sender");
  return [name, address];
}

const when = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });

export function time(ts: Timestamp | undefined): string {
  return ts ? when.format(timestampDate(ts)) : "";
}

/** When the message went or came, else when it was created. */
export function messageTime(m: Message): Timestamp | undefined {
  return m.sentAt ?? m.createdAt;
}

/** The thread a message belongs to: its customer, or the unknown sender's number or address. */
export function threadKey(m: Message): string {
  if (m.customer?.customerId) return m.customer.customerId;
  return m.channel === Channel.EMAIL ? (m.customer?.email ?? "") : (m.customer?.phone ?? "");
}

/** A template's URL key: its type's and channel's filter keys ("appointment_confirmation.sms"). */
export function templateKey(type: MessageType, channel: Channel): string {
  const words = (table: [unknown, string][], value: unknown) => label(table as [unknown, string][], value).toLowerCase().replaceAll(" ", "_");
  return `${words(TYPES, type)}.${words(CHANNELS, channel)}`;
}

/** "Appointment confirmation · SMS". */
export function templateTitle(t: Pick<Template, "type" | "channel">): string {
  return `${label(TYPES, t.type)} · ${label(CHANNELS, t.channel)}`;
}

/** Which wording a template is: the built-in one, or a version and when it was published. */
export function versionText(t: Template): string {
  if (!t.builtIn) return `Version ${t.version}, published ${time(t.publishedAt)}`;
  return t.version > 0 ? `Built-in wording (reset ${time(t.publishedAt)})` : "Built-in wording";
}

/** Why texts are not going out, when the account's number is not registered to send them. */
export function registrationNotice(status: string, reason: string): string {
  const state = status.replaceAll("_", " ");
  const why = reason ? ` (${reason})` : "";
  return `Texts are not being sent: your business number's A2P 10DLC registration is ${state}${why}, and US carriers block texts from unregistered numbers. Automatic texts are recorded as failed; emails still go.`;
}
