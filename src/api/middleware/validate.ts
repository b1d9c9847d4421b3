// Request-body validation with TypeBox schemas, done here rather than by Elysia's `body:` option:
// Elysia's normalisation coerces values (a number became `{}` for a Record schema) and its strict mode
// rejects unknown keys, which Matrix requires servers to ignore. This checks without changing anything.
import type { Static, TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { ValueErrorType } from "@sinclair/typebox/errors";
import { MatrixError } from "../../protocol/errors";

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker<T extends TSchema>(schema: T): TypeCheck<T> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check as TypeCheck<T>;
}

/** Returns the body typed by the schema, or throws M_NOT_JSON / M_MISSING_PARAM / M_BAD_JSON naming the field. */
export function validateBody<T extends TSchema>(schema: T, body: unknown): Static<T> {
  if (body === undefined) throw new MatrixError("M_NOT_JSON", "Content not JSON.");
  const check = checker(schema);
  if (check.Check(body)) return body;
  const first = check.Errors(body).First();
  const field = first?.path.replace(/^\//, "").replaceAll("/", ".") ?? "";
  if (first && first.type === ValueErrorType.ObjectRequiredProperty) {
    throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${field}`);
  }
  throw new MatrixError("M_BAD_JSON", field ? `Invalid value for '${field}': ${first?.message}` : `Invalid request body: ${first?.message ?? "wrong shape"}`);
}
