// Validates Kubernetes manifests against the Kubernetes API's schemas, as
// the npm package kubernetes-models compiles them from the API's OpenAPI
// definitions (Kubernetes 1.27): each document's apiVersion and kind must
// name a built-in type, its fields must have the schema's types, formats
// and required fields, and, stricter than the API server's schema, every
// field must be one the schema knows (a misspelt field is an error, not
// something silently dropped).
//
//   node validate.mjs FILE...
// prints one line per document (FILE:LINE: KIND NAME: ok) and one per
// problem (FILE:LINE: KIND NAME: PATH: MESSAGE); exits 1 when any document
// has a problem, 2 on a file that cannot be read or parsed.
import { readFileSync } from "node:fs";
import * as models from "kubernetes-models";
import { LineCounter, parseAllDocuments } from "yaml";

// A value no field of any schema accepts: set in place of a field, it makes
// the validator complain at that field's path, unless the schema does not
// know the field at all.
const PROBE = Symbol("probe");

// The namespace of kubernetes-models for an apiVersion: "v1" -> v1,
// "apps/v1" -> apps.v1, "networking.k8s.io/v1" -> networkingK8sIo.v1.
function modelOf(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  const slash = apiVersion.lastIndexOf("/");
  const version = apiVersion.slice(slash + 1);
  const group = slash < 0 ? null : apiVersion.slice(0, slash);
  const ns = group === null ? models :
    models[group.replace(/\.([a-z])/g, (_, c) => c.toUpperCase())];
  const versioned = group === null ? ns[version] : ns && ns[version];
  const Model = versioned && versioned[kind];
  return typeof Model === "function" && Model.kind === kind && Model.apiVersion === apiVersion
    ? Model : null;
}

function errorsOf(Model, doc) {
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    return e.errors;
  }
}

// JSON pointer escaping, as the validator writes instance paths.
const pointer = (key) => String(key).replace(/~/g, "~0").replace(/\//g, "~1");

// Every field of DOC the schema does not know: each field in turn is set to
// PROBE; a known field then fails at its own path, an unknown one does not.
function unknownFields(Model, doc) {
  const unknown = [];
  const walk = (node, path) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${path}/${i}`));
      return;
    }
    if (node === null || typeof node !== "object") return;
    for (const key of Object.keys(node)) {
      const at = `${path}/${pointer(key)}`;
      const saved = node[key];
      node[key] = PROBE;
      const known = errorsOf(Model, doc).some((e) => e.instancePath === at);
      node[key] = saved;
      if (!known) unknown.push(at);
      else walk(saved, at);
    }
  };
  walk(doc, "");
  return unknown;
}

function problemsOf(doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    return [["", "a document must be a mapping"]];
  const Model = modelOf(doc.apiVersion, doc.kind);
  if (Model === null)
    return [["", `no built-in type ${doc.kind} in ${doc.apiVersion}`]];
  const problems = errorsOf(Model, doc).map((e) => [e.instancePath, e.message]);
  return problems.concat(unknownFields(Model, doc).map((p) => [p, "unknown field"]));
}

let failed = false;
for (const file of process.argv.slice(2)) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    console.log(`${file}: ${e.message}`);
    process.exit(2);
  }
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true });
  for (const d of docs) {
    const line = lines.linePos(d.range[0]).line;
    if (d.errors.length > 0 || d.warnings.length > 0) {
      for (const e of [...d.errors, ...d.warnings]) console.log(`${file}:${line}: ${e.message}`);
      process.exit(2);
    }
    const doc = d.toJS();
    if (doc === null) continue; // an empty document (comments only)
    const what = `${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const problems = problemsOf(doc);
    for (const [path, message] of problems) console.log(`${file}:${line}: ${what}: ${path || "/"}: ${message}`);
    if (problems.length === 0) console.log(`${file}:${line}: ${what}: ok`);
    failed ||= problems.length > 0;
  }
}
process.exit(failed ? 1 : 0);
