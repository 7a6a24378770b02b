/** Request validation: a JSON body parsed with a size limit and checked with zod, or a clear 4xx. */
import type { Context } from "hono";
import type { z } from "zod";
import { AppError, BadRequestError } from "../lib/errors.ts";

/** Reads at most `maxBytes` of a JSON body and validates it; 413, 415 and 400 otherwise. */
export async function jsonBody<T extends z.ZodType>(
  c: Context,
  schema: T,
  maxBytes = 64 * 1024,
): Promise<z.infer<T>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new AppError(415, "unsupported_media_type", "Send the body as application/json.");
  }
  const declared = Number(c.req.header("content-length") ?? 0);
  if (declared > maxBytes) {
    throw new AppError(413, "body_too_large", `The body is limited to ${maxBytes} bytes.`);
  }
  const text = await readLimited(c.req.raw.body, maxBytes);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new BadRequestError("invalid_json", "The body is not valid JSON.");
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw new BadRequestError("invalid_request", `${where}${issue.message}`);
  }
  return result.data;
}

async function readLimited(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<string> {
  if (!body) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      throw new AppError(413, "body_too_large", `The body is limited to ${maxBytes} bytes.`);
    }
    chunks.push(chunk);
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new BadRequestError("invalid_json", "The body is not valid UTF-8.");
  }
}

/** A path parameter that must look like one of our ids. */
export function idParam(c: Context, name: string): string {
  const value = c.req.param(name) ?? "";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw new AppError(404, "not_found", "No such id.");
  return value;
}
