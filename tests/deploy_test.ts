/**
 * `deploy.ts`: every variant of the manifest validated against the Kubernetes API schemas, the
 * init container's arguments parsed by the real `fetch` parser, targeted checks of what matters
 * (sockets, privileges, SCC, metrics wiring), bad input, and a run straight from a URL.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { FETCH_FLAGS, parseFetchArgs } from "../cmd/fetch.ts";
import { parseAggregateMetricsArgs } from "../cmd/aggregate_metrics.ts";
import denoConfig from "../deno.json" with { type: "json" };
import {
  DEFAULT_IMAGE_REPO,
  deploy,
  DeployInputError,
  type KubernetesObject,
  type ManifestOptions,
  renderManifests,
} from "../deploy.ts";
import { FETCH_TUNING_DEFAULTS } from "../lib/deploy/fetch_tuning.ts";
import { schemaErrors, unknownFieldErrors, validationErrors } from "../testing/deploy_schema.ts";

const ROOT = new URL("../", import.meta.url);
const DEPLOY = new URL("deploy.ts", ROOT).pathname;

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** Every flavor x secret x metrics x service type (the type only exists with metrics). */
const VARIANTS: { label: string; args: string[]; options: ManifestOptions }[] = [];
for (const flavor of ["vanilla", "ocp"] as const) {
  for (const secret of [undefined, "pull-secret"]) {
    for (const serviceType of [undefined, "ClusterIP", "LoadBalancer", "default"] as const) {
      const collectMetrics = serviceType !== undefined;
      const options: ManifestOptions = {
        flavor,
        ...(secret ? { secret } : {}),
        ...(collectMetrics ? { collectMetrics } : {}),
        ...(serviceType && serviceType !== "default" ? { metricsServiceType: serviceType } : {}),
      };
      const args = [
        "my-images",
        "--k8s-flavor",
        flavor,
        ...(secret ? ["--secret", secret] : []),
        ...(collectMetrics ? ["--collect-metrics"] : []),
        ...(serviceType && serviceType !== "default"
          ? ["--metrics-service-type", serviceType]
          : []),
      ];
      VARIANTS.push({ label: args.slice(1).join(" "), args, options });
    }
  }
}

/** Every flag at once, on top of each flavor. */
const EVERYTHING = [
  "--namespace",
  "prefetch-images",
  "--image-repo",
  "registry.example.com:5000/mirror/image-prefetcher",
  "--version",
  "sha256:" + "0123456789abcdef".repeat(4),
  "--node-selector",
  "kubernetes.io/arch=amd64,node-role.kubernetes.io/worker=",
  "--priority-class",
  "system-node-critical",
  "--cri-socket",
  "/run/k3s/containerd/containerd.sock",
  "--max-parallel",
  "4",
  "--progress",
  "off",
  ...Object.entries(FETCH_TUNING_DEFAULTS).filter(([f]) => f !== "max-parallel" && f !== "progress")
    .flatMap((
      [flag],
      i,
    ) => [`--${flag}`, `${i + 2}m`]),
];
/** The security objects: the admission policy of node updates; no NetworkPolicy with hostNetwork. */
for (
  const extra of [
    ["--label-nodes", "--remove-startup-taint", "example.com/prefetching=true:NoSchedule"],
    ["--credential-provider", "gke"],
  ]
) {
  const args = ["my-images", "--collect-metrics", "--waves", ...extra];
  VARIANTS.push({ label: args.slice(1).join(" "), args, options: {} });
}
for (const flavor of ["vanilla", "ocp"]) {
  VARIANTS.push({
    label: `${flavor} with every flag`,
    args: [
      "everything",
      "--k8s-flavor",
      flavor,
      "--secret",
      "s",
      "--collect-metrics",
      ...EVERYTHING,
    ],
    options: {},
  });
}

function parseYaml(text: string): KubernetesObject[] {
  return parseAllDocuments(text).map((document) => {
    assert.deepEqual(document.errors, []);
    return document.toJS() as KubernetesObject;
  });
}

function find(objects: KubernetesObject[], kind: string): Json {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind}, got ${found.length}`);
  return found[0];
}

function podSpec(objects: KubernetesObject[], kind = "DaemonSet"): Json {
  return find(objects, kind).spec.template.spec;
}

Deno.test("every variant, as printed, passes the Kubernetes API schemas strictly", async () => {
  const all: KubernetesObject[] = [];
  for (const variant of VARIANTS) {
    const printed = parseYaml(deploy(variant.args));
    if (Object.keys(variant.options).length > 0) {
      // The YAML says exactly what renderManifests built.
      assert.deepEqual(printed, renderManifests("my-images", variant.options), variant.label);
    }
    all.push(...printed);
  }
  assert.equal(all.filter((o) => o.kind === "DaemonSet").length, VARIANTS.length);
  // A Role per ocp variant (the SCC) and per metrics server (reading its pods).
  const roles = VARIANTS.map((v) =>
    Number(v.args.includes("ocp")) + Number(v.args.includes("--collect-metrics"))
  ).reduce((a, b) => a + b, 0);
  assert.equal(all.filter((o) => o.kind === "Role").length, roles);
  assert.ok(all.some((o) => o.kind === "ValidatingAdmissionPolicy"), "the policy is validated");
  assert.ok(!all.some((o) => o.kind === "Secret"), "no Secret: no long-lived credential");
  assert.deepEqual(await validationErrors(all), []);
});

Deno.test("the validator rejects unknown fields, wrong types and missing required fields", async () => {
  const valid = find(renderManifests("my-images", { flavor: "ocp" }), "DaemonSet");
  const role = find(renderManifests("my-images", { flavor: "ocp" }), "RoleBinding");
  assert.deepEqual(schemaErrors(valid as KubernetesObject), []);

  const unknownField = structuredClone(valid);
  unknownField.spec.template.spec.initContainers[0].securityContext.readOnlyRootFileSystem = true;
  const unknownSubjectField = structuredClone(role);
  unknownSubjectField.subjects[0].namespaces = "default";
  // The API's schemas allow unknown fields; the strict pass is what rejects them.
  assert.deepEqual(schemaErrors(unknownField as KubernetesObject), []);
  const strict = await unknownFieldErrors(
    [unknownField, unknownSubjectField] as KubernetesObject[],
  );
  assert.equal(strict.length, 2, strict.join("\n"));
  assert.match(strict[0], /DaemonSet my-images: TS2353 .*'"?readOnlyRootFileSystem"?'/);
  assert.match(strict[1], /RoleBinding my-images-use-privileged-scc: TS2353 .*'"?namespaces"?'/);

  const wrongType = structuredClone(valid);
  wrongType.spec.template.spec.initContainers[0].securityContext.runAsUser = "0";
  assert.match(schemaErrors(wrongType as KubernetesObject).join(), /runAsUser must be integer/);

  const missingRequired = structuredClone(valid);
  delete missingRequired.spec.selector;
  assert.match(
    schemaErrors(missingRequired as KubernetesObject).join(),
    /spec must have required property selector/,
  );

  const badRule = structuredClone(find(renderManifests("my-images", { flavor: "ocp" }), "Role"));
  badRule.rules[0].verbs = "use";
  assert.match(schemaErrors(badRule as KubernetesObject).join(), /verbs must be array/);
  assert.equal((await unknownFieldErrors([wrongType, badRule] as KubernetesObject[])).length, 2);
});

Deno.test("the init container's arguments are what the real fetch parser accepts", () => {
  for (const variant of VARIANTS) {
    const objects = parseYaml(deploy(variant.args));
    const init = podSpec(objects).initContainers[0];
    assert.equal(init.args[0], "fetch", variant.label);
    const parsed = parseFetchArgs(init.args.slice(1), {
      nodeName: "node-a",
      hostname: () => "pod-name",
    });
    assert.equal(parsed.kind, "run", variant.label);
    if (parsed.kind !== "run") continue;
    const config = parsed.config;
    const everything = variant.label.includes("every flag");
    const ocp = variant.args.includes("ocp");
    assert.equal(
      config.criSocket,
      everything
        ? "/run/k3s/containerd/containerd.sock"
        : ocp
        ? "/run/crio/crio.sock"
        : "/run/containerd/containerd.sock",
    );
    assert.equal(config.imageListFile, "/etc/image-prefetcher/image-list/images.txt");
    assert.deepEqual(config.images, []);
    assert.equal(config.nodeName, "node-a", "NODE_NAME is the node's name");
    const secret = variant.args.includes("--secret");
    assert.equal(
      config.dockerConfig,
      secret ? "/etc/image-prefetcher/docker-config/.dockerconfigjson" : undefined,
    );
    const namespace = everything ? "prefetch-images" : "default";
    const name = everything ? "everything" : "my-images";
    assert.equal(
      parsed.metricsEndpoint,
      variant.args.includes("--collect-metrics")
        ? `${name}-metrics.${namespace}.svc:8443`
        : undefined,
    );
    if (everything) {
      assert.equal(config.maxParallel, 4);
      assert.equal(config.imageListTimeoutMs, 2 * 60_000);
      assert.equal(config.criConnectTimeoutMs, 3 * 60_000);
      assert.deepEqual(config.schedule, {
        initialAttemptTimeoutMs: 4 * 60_000,
        maxAttemptTimeoutMs: 5 * 60_000,
        initialDelayMs: 7 * 60_000,
        maxDelayMs: 8 * 60_000,
      });
      assert.equal(config.overallTimeoutMs, 6 * 60_000);
      assert.equal(config.progress, "off");
      assert.equal(config.stallTimeoutMs, 9 * 60_000);
      assert.equal(config.progressIntervalMs, 10 * 60_000);
    } else {
      // Nothing passed through: fetch's own defaults apply.
      assert.equal(config.maxParallel, 0);
      assert.equal(config.overallTimeoutMs, 20 * 60_000);
      assert.equal(config.strict, false);
      assert.equal(config.progress, "auto");
      assert.equal(config.stallTimeoutMs, 10_000);
    }
  }
});

Deno.test("deploy's pass-through flags are fetch's flags, with fetch's defaults", () => {
  for (const [flag, value] of Object.entries(FETCH_TUNING_DEFAULTS)) {
    assert.ok(Object.hasOwn(FETCH_FLAGS, flag), `fetch has no --${flag}`);
    const spec = (FETCH_FLAGS as Record<string, { default?: string }>)[flag];
    assert.equal(spec.default, value, `--${flag}`);
  }
});

Deno.test("NODE_NAME comes from the downward API", () => {
  for (const flavor of ["vanilla", "ocp"] as const) {
    const init = podSpec(renderManifests("my-images", { flavor })).initContainers[0];
    assert.deepEqual(init.env, [
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
    ]);
  }
});

Deno.test("the CRI socket's directory is mounted read-only from the host", () => {
  for (
    const [options, dir] of [
      [{ flavor: "vanilla" }, "/run/containerd"],
      [{ flavor: "ocp" }, "/run/crio"],
      [{ criSocket: "/run/k3s/containerd/containerd.sock" }, "/run/k3s/containerd"],
    ] as const
  ) {
    const spec = podSpec(renderManifests("my-images", options));
    const volume = spec.volumes.find((v: Json) => v.name === "cri-socket");
    assert.deepEqual(volume.hostPath, { path: dir, type: "Directory" });
    const mount = spec.initContainers[0].volumeMounts.find((m: Json) => m.name === "cri-socket");
    assert.deepEqual(mount, { name: "cri-socket", mountPath: dir, readOnly: true });
    // Only the init container sees the host.
    assert.equal(spec.containers[0].volumeMounts, undefined);
    assert.equal(spec.hostNetwork ?? spec.hostPID ?? spec.hostIPC, undefined);
  }
});

Deno.test("every container runs with least privilege and honest resources", () => {
  const quantity = (text: string): number => {
    const match = /^(\d+)(m|Mi|Gi)?$/.exec(text);
    assert.ok(match, text);
    return Number(match[1]) * ({ m: 0.001, Mi: 2 ** 20, Gi: 2 ** 30 }[match[2] ?? ""] ?? 1);
  };
  for (const variant of VARIANTS) {
    const objects = parseYaml(deploy(variant.args));
    const ocp = variant.args.includes("ocp");
    for (const kind of ["DaemonSet", "Deployment"]) {
      if (!objects.some((o) => o.kind === kind)) continue;
      const spec = podSpec(objects, kind);
      assert.deepEqual(spec.securityContext.seccompProfile, { type: "RuntimeDefault" });
      assert.equal(spec.automountServiceAccountToken, false);
      for (const container of [...spec.initContainers ?? [], ...spec.containers]) {
        const where = `${variant.label}: ${kind} ${container.name}`;
        const sc = container.securityContext;
        assert.equal(sc.allowPrivilegeEscalation, false, where);
        assert.equal(sc.privileged, false, where);
        assert.equal(sc.readOnlyRootFilesystem, true, where);
        assert.deepEqual(sc.capabilities, { drop: ["ALL"] }, where);
        if (container.name === "prefetch") {
          assert.equal(sc.runAsUser, 0, "the CRI socket is root's");
          assert.deepEqual(sc.seLinuxOptions, ocp ? { type: "spc_t" } : undefined, where);
        } else {
          assert.equal(sc.runAsNonRoot, true, where);
          assert.equal(sc.seLinuxOptions, undefined, where);
          // OpenShift assigns the user from the namespace's range.
          assert.equal(sc.runAsUser, ocp ? undefined : 65532, where);
        }
        for (const resource of ["cpu", "memory"]) {
          const request = quantity(container.resources.requests[resource]);
          const limit = quantity(container.resources.limits[resource]);
          assert.ok(request > 0 && request <= limit, `${where} ${resource}`);
        }
        // The aggregator keeps every attempt in memory (bench/aggregator.ts: 390 MiB for
        // 5,000 nodes x 100 images); the node-side containers stay small.
        const maxMemory = container.name === "aggregate-metrics" ? 2 ** 30 : 256 * 2 ** 20;
        assert.ok(quantity(container.resources.limits.memory) <= maxMemory, where);
      }
    }
  }
});

Deno.test("the DaemonSet covers every node and rolls out in one go", () => {
  const objects = renderManifests("my-images", {
    nodeSelector: { "kubernetes.io/arch": "arm64" },
    priorityClass: "high",
  });
  const ds = find(objects, "DaemonSet");
  assert.deepEqual(ds.spec.template.spec.tolerations, [{ operator: "Exists" }]);
  assert.deepEqual(ds.spec.updateStrategy, {
    type: "RollingUpdate",
    rollingUpdate: { maxUnavailable: "100%" },
  });
  assert.deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  assert.deepEqual(ds.spec.template.spec.nodeSelector, {
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "arm64",
  });
  assert.equal(ds.spec.template.spec.priorityClassName, "high");
  assert.deepEqual(ds.spec.template.spec.initContainers.map((c: Json) => c.name), ["prefetch"]);
  assert.deepEqual(ds.spec.template.spec.containers.map((c: Json) => c.args), [["sleep"]]);
  const list = ds.spec.template.spec.volumes.find((v: Json) => v.name === "image-list");
  assert.deepEqual(list.configMap, {
    name: "my-images",
    items: [{ key: "images.txt", path: "images.txt" }],
  });
  assert.equal(
    ds.spec.template.spec.containers[0].image,
    `${DEFAULT_IMAGE_REPO}:v${denoConfig.version}`,
  );
});

Deno.test("the pull Secret is mounted for fetch and given to the kubelet", () => {
  const spec = podSpec(renderManifests("my-images", { secret: "regcred" }));
  assert.deepEqual(spec.imagePullSecrets, [{ name: "regcred" }]);
  const volume = spec.volumes.find((v: Json) => v.name === "docker-config");
  assert.deepEqual(volume.secret, {
    secretName: "regcred",
    items: [{ key: ".dockerconfigjson", path: ".dockerconfigjson" }],
    defaultMode: 0o400,
  });
  assert.deepEqual(
    spec.initContainers[0].volumeMounts.find((m: Json) => m.name === "docker-config"),
    { name: "docker-config", mountPath: "/etc/image-prefetcher/docker-config", readOnly: true },
  );
  const without = podSpec(renderManifests("my-images"));
  assert.equal(without.imagePullSecrets, undefined);
  assert.ok(!without.volumes.some((v: Json) => v.name === "docker-config"));
});

Deno.test("ocp adds exactly the SCC use it needs; vanilla nothing of it", () => {
  const ocp = renderManifests("my-images", { flavor: "ocp", namespace: "ns" });
  assert.deepEqual(ocp.map((o) => o.kind), ["ServiceAccount", "Role", "RoleBinding", "DaemonSet"]);
  assert.equal(find(ocp, "ServiceAccount").automountServiceAccountToken, false);
  const role = find(ocp, "Role");
  assert.deepEqual(role.rules, [{
    apiGroups: ["security.openshift.io"],
    resources: ["securitycontextconstraints"],
    resourceNames: ["privileged"],
    verbs: ["use"],
  }]);
  const binding = find(ocp, "RoleBinding");
  assert.deepEqual(binding.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "Role",
    name: role.metadata.name,
  });
  assert.deepEqual(binding.subjects, [{
    kind: "ServiceAccount",
    name: "my-images",
    namespace: "ns",
  }]);
  const ds = find(ocp, "DaemonSet");
  assert.equal(ds.spec.template.spec.serviceAccountName, "my-images");
  assert.deepEqual(ds.spec.template.metadata.annotations, {
    "openshift.io/required-scc": "privileged",
  });

  // Two instances in one namespace do not share a name.
  const other = renderManifests("other-images", { flavor: "ocp", namespace: "ns" });
  const names = (objects: KubernetesObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`);
  assert.equal(names(ocp).filter((n) => names(other).includes(n)).length, 0);

  const vanilla = renderManifests("my-images", { collectMetrics: true });
  assert.deepEqual(vanilla.map((o) => o.kind), [
    "ServiceAccount",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "Service",
    "Deployment",
    "DaemonSet",
  ]);
  const text = JSON.stringify(vanilla);
  const plain = JSON.stringify(renderManifests("my-images"));
  assert.ok(!plain.includes("serviceAccountName"), "no ServiceAccount without metrics");
  for (const word of ["openshift", "spc_t", "crio"]) {
    assert.ok(!text.includes(word), `vanilla mentions ${word}`);
  }
});

Deno.test("metrics: the Service selects the aggregator and fetch reports to it", () => {
  for (const serviceType of [undefined, "ClusterIP", "LoadBalancer"] as const) {
    const objects = renderManifests("my-images", {
      namespace: "ns",
      collectMetrics: true,
      ...(serviceType ? { metricsServiceType: serviceType } : {}),
    });
    const service = find(objects, "Service");
    const deployment = find(objects, "Deployment");
    assert.equal(service.spec.type, serviceType ?? "ClusterIP");
    const podLabels = deployment.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(service.spec.selector)) {
      assert.equal(podLabels[key], value);
    }
    // The DaemonSet's pods are not selected by the metrics Service.
    const dsLabels = find(objects, "DaemonSet").spec.template.metadata.labels;
    assert.ok(Object.entries(service.spec.selector).some(([k, v]) => dsLabels[k] !== v));
    const container = deployment.spec.template.spec.containers[0];
    // The real parser of aggregate-metrics reads the container's arguments.
    assert.equal(container.args[0], "aggregate-metrics");
    const parsed = parseAggregateMetricsArgs(container.args.slice(1));
    assert.ok(parsed.kind === "run");
    assert.deepEqual([parsed.config.grpcPort, parsed.config.httpPort], [8443, 8080]);
    // Its state file is on the pod's emptyDir, so attempts survive a crash of the container.
    const mount = container.volumeMounts.find((m: Json) =>
      parsed.config.stateFile?.startsWith(m.mountPath + "/")
    );
    assert.ok(mount, `no volume holds ${parsed.config.stateFile}`);
    const volume = deployment.spec.template.spec.volumes.find((v: Json) => v.name === mount.name);
    assert.ok(volume?.emptyDir, "the state file's volume is an emptyDir");
    for (const port of service.spec.ports) {
      const target = container.ports.find((p: Json) => p.name === port.targetPort);
      assert.ok(target, `no container port ${port.targetPort}`);
      assert.equal(target.containerPort, port.port);
    }
    assert.deepEqual(container.readinessProbe.tcpSocket, { port: "grpc" });
    const args: string[] = podSpec(objects).initContainers[0].args;
    const endpoint = args[args.indexOf("--metrics-endpoint") + 1];
    const grpc = service.spec.ports.find((p: Json) => p.name === "grpc");
    assert.equal(
      endpoint,
      `${service.metadata.name}.${service.metadata.namespace}.svc:${grpc.port}`,
    );
  }
  const none = renderManifests("my-images");
  assert.ok(!none.some((o) => o.kind === "Service" || o.kind === "Deployment"));
});

Deno.test("flags go before or after the name, with one or two dashes, spaced or with =", () => {
  const expected = deploy(["my-images", "--k8s-flavor", "ocp", "--collect-metrics"]).split("\n")
    .slice(1);
  for (
    const args of [
      ["--k8s-flavor", "ocp", "--collect-metrics", "my-images"],
      ["--k8s-flavor=ocp", "my-images", "-collect-metrics"],
      ["-k8s-flavor", "ocp", "--collect-metrics=true", "--", "my-images"],
    ]
  ) {
    assert.deepEqual(deploy(args).split("\n").slice(1), expected, args.join(" "));
  }
  assert.match(deploy(["--help"]), /Usage: deploy.ts <name> \[flags\]/);
  assert.match(deploy(["x", "-h"]), /--metrics-service-type ClusterIP\|LoadBalancer/);
});

Deno.test("--pin makes fetch pin the images; without it, fetch does not", () => {
  for (const [args, pin] of [[["my-images", "--pin"], true], [["my-images"], false]] as const) {
    const init = podSpec(parseYaml(deploy(args))).initContainers[0];
    const parsed = parseFetchArgs(init.args.slice(1), { hostname: () => "node-a" });
    assert.equal(parsed.kind === "run" && parsed.config.pin, pin, args.join(" "));
  }
  const objects = renderManifests("my-images", { pin: true });
  assert.ok(podSpec(objects).initContainers[0].args.includes("--pin"));
});

Deno.test("bad input is one sentence naming the fix", () => {
  for (
    const [args, pattern] of [
      [[], /instance name is missing/],
      [["My_Images"], /"My_Images" is not valid.*like my-images/],
      [["a".repeat(56)], /at most 55/],
      [
        ["my-images", "v0.2.2", "vanilla"],
        /version and flavor are flags now: "my-images --version v0.2.2 --k8s-flavor vanilla"/,
      ],
      [["my-images", "v0.2.2"], /the version is a flag now: "my-images --version v0.2.2"/],
      [["my-images", "other"], /takes one argument.*got 2/],
      [["my-images", "--k8s-flavor", "openshift"], /vanilla .* or ocp .*not "openshift"/],
      [["my-images", "--flavor", "ocp"], /Unknown flag "--flavor"/],
      [["my-images", "--node-selector", "arm64"], /--node-selector "arm64" is malformed/],
      [["my-images", "--node-selector", "a b=c"], /"a b=c" is not a valid label/],
      [["my-images", "--secret"], /--secret needs a value/],
      [["my-images", "--secret", "--collect-metrics"], /--secret needs a value/],
      [["my-images", "--secret", "Bad_Secret"], /not a valid Secret name/],
      [["my-images", "--namespace", "a.b"], /not a valid namespace name/],
      [["my-images", "--metrics-service-type", "ClusterIP"], /only applies with --collect-metrics/],
      [
        ["my-images", "--collect-metrics", "--metrics-service-type", "NodePort"],
        /ClusterIP or LoadBalancer/,
      ],
      [["my-images", "--overall-timeout", "20"], /--overall-timeout: "20" is not a valid duration/],
      [["my-images", "--initial-pull-attempt-timeout", "10m"], /longer than --max-pull-attempt/],
      [["my-images", "--max-parallel", "-1"], /--max-parallel needs a value/],
      [["my-images", "--max-parallel=all"], /whole number/],
      [["my-images", "--version", "v1 2"], /not a valid image tag/],
      [["my-images", "--image-repo", "ghcr.io/x/y:v1"], /must not include a tag/],
      [["my-images", "--image-repo", "Ghcr.io/X/Y"], /not a valid image repository/],
      [["my-images", "--priority-class", "High"], /not a valid PriorityClass name/],
      [["my-images", "--cri-socket", "/crio.sock"], /directory below \//],
      [["my-images", "--collect-metrics=yes"], /takes no value/],
      [["my-images", "--k8s-flavor", "ocp", "--pin"], /--pin works with containerd/],
      [["my-images", "--version", "v1", "--version", "v2"], /given twice/],
    ] as const
  ) {
    assert.throws(
      () => deploy(args),
      (error: unknown) => {
        assert.ok(error instanceof DeployInputError, String(error));
        assert.match(error.message, pattern, args.join(" "));
        assert.ok(!error.message.includes("\n"), error.message);
        assert.match(error.message, /[.]$/, error.message);
        return true;
      },
      args.join(" "),
    );
  }
});

Deno.test("the CLI: manifest on stdout with no permission; errors on stderr with exit 1", async () => {
  const run = async (args: string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--quiet", DEPLOY, ...args],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
  };
  const ok = await run(["my-images", "--collect-metrics"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr, "");
  assert.deepEqual(parseYaml(ok.stdout), renderManifests("my-images", { collectMetrics: true }));

  const bad = await run(["my-images", "--k8s-flavor", "gke"]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, "", "no half-written manifest");
  assert.match(bad.stderr, /^deploy: --k8s-flavor must be vanilla .* not "gke"\.\n$/);
});

Deno.test("deploy.ts runs from a URL, loading nothing but its own files", async () => {
  const requested: string[] = [];
  const types: Record<string, string> = {
    ts: "application/typescript",
    json: "application/json",
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    requested.push(path);
    const type = types[path.split(".").at(-1) ?? ""];
    if (path.includes("..") || type === undefined) return new Response("no", { status: 404 });
    try {
      return new Response(await Deno.readFile(new URL(`.${path}`, ROOT)), {
        headers: { "content-type": type },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const work = await Deno.makeTempDir({ prefix: "deploy_url_" });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/deploy.ts`;
    const output = await new Deno.Command(Deno.execPath(), {
      // No permission, no config, an empty cache: what a user gets on a fresh machine.
      args: ["run", "--no-prompt", "--no-config", "--quiet", url, "my-images", "--k8s-flavor=ocp"],
      cwd: work,
      env: { NO_COLOR: "1", DENO_DIR: `${work}/deno_dir` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const objects = parseYaml(new TextDecoder().decode(output.stdout));
    assert.deepEqual(objects, renderManifests("my-images", { flavor: "ocp" }));
    assert.equal(
      podSpec(objects).containers[0].image,
      `${DEFAULT_IMAGE_REPO}:v${denoConfig.version}`,
      "the default version comes from deno.json, also from a URL",
    );
    assert.deepEqual(await validationErrors(objects), []);
    assert.ok(requested.includes("/deploy.ts") && requested.includes("/deno.json"));
    for (const path of requested) {
      assert.match(path, /^\/(deploy\.ts|deno\.json|lib\/[a-z0-9_/]+\.ts)$/, `requested ${path}`);
    }
    // Nothing came from npm or JSR.
    const npm = [...Deno.readDirSync(`${work}/deno_dir/npm`)].map((e) => e.name);
    assert.deepEqual(npm, [], "nothing from npm");
    const remote = [...Deno.readDirSync(`${work}/deno_dir/remote`)].map((e) => e.name);
    assert.deepEqual(remote, ["http"]);
  } finally {
    await server.shutdown();
    await Deno.remove(work, { recursive: true });
  }
});
