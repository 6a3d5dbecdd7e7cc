// Reads {dockerfiles: {path: text}, objects: [{file, index, object}]} (written by the JUnit test) and
// prints, as JSON, each Dockerfile's parsed instructions and lint diagnostics (dockerfile-ast and
// dockerfile-utils, the parser and linter behind the VS Code Docker extension) and each Kubernetes
// object's JSON-schema errors (kubernetes-models, schemas bundled in the package: works offline).
import { readFileSync } from "node:fs";
import { DockerfileParser } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));

// apiVersion -> module exporting one class per kind. Kinds without a bundled schema (Strimzi,
// Kustomization) are reported as unvalidated; the Java test checks their fields itself.
const MODULES = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

const dockerfiles = {};
for (const [path, text] of Object.entries(input.dockerfiles)) {
  const parsed = DockerfileParser.parse(text);
  dockerfiles[path] = {
    instructions: parsed.getInstructions().map((i) => ({
      keyword: i.getKeyword(),
      line: i.getRange().start.line + 1,
      args: i.getArguments().map((a) => a.getValue()),
      // HEALTHCHECK/ONBUILD wrap another instruction (CMD ...); its keyword comes back separately.
      flags: typeof i.getFlags === "function"
        ? i.getFlags().map((f) => ({ name: f.getName(), value: f.getValue() }))
        : [],
      // exec form (["java", "-jar", ...]) as the strings Docker will see
      json: typeof i.getJSONStrings === "function" ? i.getJSONStrings().map((a) => a.getJSONValue()) : null,
      // ENV/ARG name=value pairs, with quoting resolved
      properties: typeof i.getProperties === "function"
        ? i.getProperties().map((p) => ({ name: p.getName(), value: p.getValue() }))
        : [],
    })),
    diagnostics: lintDockerfile(text).map((d) => ({
      line: d.range.start.line + 1,
      severity: d.severity,
      message: d.message,
    })),
  };
}

const objects = [];
for (const { file, index, object } of input.objects) {
  const result = { file, index, validated: false, errors: [] };
  const moduleName = MODULES[object.apiVersion];
  if (moduleName) {
    const mod = await import(moduleName);
    const Model = mod[object.kind];
    if (Model) {
      result.validated = true;
      try {
        new Model(object).validate();
      } catch (e) {
        result.errors.push(String(e.message ?? e));
      }
    }
  }
  objects.push(result);
}

process.stdout.write(JSON.stringify({ dockerfiles, objects }));
