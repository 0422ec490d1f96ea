/**
 * Plain JavaScript values <-> google.protobuf.Value / Struct / Timestamp, as
 * @grpc/proto-loader represents them (camelCase fields, `oneofs: true`).
 *
 * The mapping is JSON's: null, booleans, finite numbers, strings, arrays and
 * plain objects. A Value holds every number as a double, so 3 comes back as 3
 * (JavaScript has one number type; integers up to 2^53 are exact).
 */

/** A plain JSON-shaped value -> google.protobuf.Value. */
export function toValue(data) {
  if (data === null || data === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof data?.toJSON === 'function') return toValue(data.toJSON());
  switch (typeof data) {
    case 'boolean':
      return { boolValue: data };
    case 'string':
      return { stringValue: data };
    case 'number':
      if (!Number.isFinite(data)) throw new TypeError(`${data} cannot be sent as a JSON value`);
      return { numberValue: data };
    case 'bigint':
      if (data > BigInt(Number.MAX_SAFE_INTEGER) || data < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new TypeError(`${data} is too large for a JSON number (a double)`);
      }
      return { numberValue: Number(data) };
    case 'object':
      if (Array.isArray(data)) return { listValue: { values: data.map((item) => toValue(item)) } };
      return { structValue: toStruct(data) };
    default:
      throw new TypeError(`a ${typeof data} cannot be sent as a JSON value`);
  }
}

/** A plain object -> google.protobuf.Struct; keys whose value is undefined are left out, as in JSON. */
export function toStruct(object) {
  const fields = {};
  for (const [key, item] of Object.entries(object)) {
    if (item !== undefined) fields[key] = toValue(item);
  }
  return { fields };
}

/** google.protobuf.Value -> a plain value; an unset Value (null/undefined) gives null. */
export function fromValue(value) {
  if (value === null || value === undefined) return null;
  const kind = value.kind ?? ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'].find((k) => value[k] != null);
  switch (kind) {
    case 'numberValue':
      return Number(value.numberValue);
    case 'stringValue':
      return value.stringValue;
    case 'boolValue':
      return value.boolValue;
    case 'structValue':
      return fromStruct(value.structValue);
    case 'listValue':
      return (value.listValue?.values ?? []).map((item) => fromValue(item));
    default:
      return null;
  }
}

/** google.protobuf.Struct -> a plain object. */
export function fromStruct(struct) {
  const object = {};
  for (const [key, item] of Object.entries(struct?.fields ?? {})) object[key] = fromValue(item);
  return object;
}

/** google.protobuf.Timestamp -> Date (null when unset). */
export function toDate(timestamp) {
  if (!timestamp) return null;
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor(Number(timestamp.nanos ?? 0) / 1e6));
}
