//! The SMS counter the composer shows: characters and segments as carriers count them. GSM-7 text
//! goes 160 characters in one segment and 153 per segment beyond (the extension characters count
//! twice); anything else is UCS-2, 70 in one and 67 per segment beyond, counted in UTF-16 units.

const GSM_BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION = "^{}\\[~]|€\f";

/** The longest manual SMS the API takes. */
export const MAX_SMS_CHARS = 1600;

export interface SmsCount {
  encoding: "GSM-7" | "UCS-2";
  /** Units as the encoding counts them (septets, or UTF-16 code units). */
  units: number;
  segments: number;
}

export function count(text: string): SmsCount {
  let septets = 0;
  for (const ch of text) {
    if (GSM_BASIC.includes(ch)) septets += 1;
    else if (GSM_EXTENSION.includes(ch)) septets += 2;
    else return ucs2(text);
  }
  return { encoding: "GSM-7", units: septets, segments: septets <= 160 ? 1 : Math.ceil(septets / 153) };
}

function ucs2(text: string): SmsCount {
  const units = text.length;
  return { encoding: "UCS-2", units, segments: units <= 70 ? 1 : Math.ceil(units / 67) };
}
