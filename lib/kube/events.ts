/**
 * Images that failed on a node, as Kubernetes Events where `kubectl describe` shows them.
 *
 * The Events are on the prefetch pod (`involvedObject` the pod, in the instance's namespace),
 * not on the Node: `kubectl describe pod` and `kubectl get events -n <namespace>` show them next
 * to the pod's own, the pod's `spec.nodeName` and the message name the node, and the RBAC stays
 * one namespaced Role (`create` and `patch` on `events`), where Events about a Node would live in
 * the `default` namespace and need a grant there.
 *
 * One Event per image and reason, named after both (`<pod>.<hash>`), so a later run (each `keep`
 * cycle) with the same failure counts it (`count`, `lastTimestamp`) instead of adding another.
 * A run writes at most {@linkcode MAX_IMAGE_EVENTS} of them, then one summary Event with the
 * rest counted by reason, within {@linkcode EVENTS_BUDGET_MS}: a broken list cannot flood the API
 * server, nor hold up the run.
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import { KubeClient, type KubeEvent } from "./kube_client.ts";
import { KubeApiError } from "./kube_error.ts";
import { inClusterConfig, InClusterConfigError } from "./in_cluster.ts";

/** Why an image is not on the node, in the words of the Event. */
export type FailureReason =
  | "not found"
  | "denied"
  | "stalled"
  | "timed out"
  | "rate limited"
  | "failed";

/** The most per-image Events one run writes; the rest go into one summary Event. */
export const MAX_IMAGE_EVENTS = 10;
/** The most time one run spends writing Events, in milliseconds. */
export const EVENTS_BUDGET_MS = 10_000;

/** The CamelCase `reason` of the Event, per failure reason. */
const EVENT_REASONS: Record<FailureReason, string> = {
  "not found": "ImageNotFound",
  denied: "ImagePullDenied",
  stalled: "ImagePullStalled",
  "timed out": "ImagePullTimedOut",
  "rate limited": "ImagePullRateLimited",
  failed: "ImagePullFailed",
};

/** One image's result, as the pull scheduler reports it (`ImageResult`). */
export interface ImageOutcome {
  /** The image reference. */
  image: string;
  /** `pulled`, `present` or `failed`. */
  status: string;
  /** How many attempts were made. */
  attempts: number;
  /** The last error, for a failed image. */
  error?: string;
  /** `permanent`, `overall-timeout` or `interrupted`, for a failed image. */
  failure?: string;
}

/**
 * The reason of a failed image, from its last error.
 *
 * @example
 * ```ts
 * import { failureReason } from "./events.ts";
 * failureReason({ error: "PullImage failed: ...: 429 Too Many Requests" }); // "rate limited"
 * ```
 */
export function failureReason(outcome: Pick<ImageOutcome, "error" | "failure">): FailureReason {
  const error = outcome.error ?? "";
  if (/\b429 Too Many Requests\b|\btoomanyrequests\b/i.test(error)) return "rate limited";
  if (
    /\b(401 Unauthorized|403 Forbidden|pull access denied|insufficient_scope|denied)\b/i.test(error)
  ) {
    return "denied";
  }
  if (/\bnot found\b|\bmanifest unknown\b|\b404 Not Found\b/i.test(error)) return "not found";
  if (/\bstalled\b|received nothing for/i.test(error)) return "stalled";
  if (outcome.failure === "overall-timeout" || /deadline exceeded|timed? ?out/i.test(error)) {
    return "timed out";
  }
  return "failed";
}

/** The pod the Events are about. */
export interface PodRef {
  /** The pod's name (`POD_NAME`, from the downward API). */
  name: string;
  /** Its namespace, the instance's. */
  namespace: string;
  /** Its UID (`POD_UID`), which `kubectl describe pod` matches Events by. */
  uid?: string;
}

/** What writing Events needs from the API. */
export interface EventsApi {
  /** Creates an Event. */
  createEvent(namespace: string, event: KubeEvent, signal?: AbortSignal): Promise<KubeEvent>;
  /** Merge-patches an Event. */
  patchEvent(
    namespace: string,
    name: string,
    patch: unknown,
    signal?: AbortSignal,
  ): Promise<KubeEvent>;
}

/** Options for {@linkcode publishFailureEvents}. */
export interface PublishEventsOptions {
  /** The API. */
  api: EventsApi;
  /** The pod the Events are about. */
  pod: PodRef;
  /** The node, named in each message. */
  node: string;
  /** Where a failure to write Events is logged (once). */
  logger: Logger;
  /** Stops writing. */
  signal?: AbortSignal;
  /** The wall clock of the timestamps. @default {() => new Date()} */
  now?: () => Date;
  /** @default {MAX_IMAGE_EVENTS} */
  maxImageEvents?: number;
}

/** What was written. */
export interface PublishedEvents {
  /** Per-image Events written (created or counted). */
  images: number;
  /** Failed images left to the summary Event. */
  summarized: number;
}

/**
 * Writes one Event per failed image of `outcomes` (at most `maxImageEvents`), and one summary
 * Event for the rest. Never throws: the first failed call is logged and ends the writing.
 */
export async function publishFailureEvents(
  outcomes: ImageOutcome[],
  options: PublishEventsOptions,
): Promise<PublishedEvents> {
  const failed = outcomes.filter((o) => o.status === "failed" && o.failure !== "interrupted");
  const max = options.maxImageEvents ?? MAX_IMAGE_EVENTS;
  const budget = AbortSignal.timeout(EVENTS_BUDGET_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, budget]) : budget;
  const written: PublishedEvents = { images: 0, summarized: Math.max(0, failed.length - max) };
  try {
    for (const outcome of failed.slice(0, max)) {
      const reason = failureReason(outcome);
      const message = `image ${outcome.image} is not on node ${options.node}: ${reason} ` +
        `after ${outcome.attempts} attempt(s); last error: ${outcome.error ?? "none"}`;
      await countEvent(
        `${outcome.image}\n${reason}`,
        EVENT_REASONS[reason],
        message,
        options,
        signal,
      );
      written.images++;
    }
    if (written.summarized > 0) {
      const message = summaryMessage(failed.slice(max), max, options.node);
      await countEvent("summary", "ImagesNotPrefetched", message, options, signal);
    }
  } catch (error) {
    options.logger.warn("could not write Kubernetes Events about the failed images", {
      error: error instanceof Error ? error.message : String(error),
      written: written.images,
    });
  }
  return written;
}

function summaryMessage(rest: ImageOutcome[], max: number, node: string): string {
  const byReason = new Map<FailureReason, number>();
  for (const outcome of rest) {
    const reason = failureReason(outcome);
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }
  const counts = [...byReason].map(([reason, n]) => `${n} ${reason}`).join(", ");
  return `${rest.length} more images are not on node ${node} (${counts}); only the first ` +
    `${max} get an Event of their own per run: see the pod's logs for each`;
}

/** The longest message written; longer ones are cut (a registry's error can be a page). */
const MAX_MESSAGE = 1024;

/**
 * Counts one more occurrence of the Event named after `key`: a merge patch of its message and
 * time, whose answer gives the count, then one of the count (guarded by `resourceVersion`); or,
 * when there is none yet (404), its creation. Needs only `patch` and `create`.
 */
async function countEvent(
  key: string,
  reason: string,
  message: string,
  options: PublishEventsOptions,
  signal: AbortSignal,
): Promise<void> {
  const { api, pod } = options;
  const name = `${pod.name}.${await shortHash(key)}`;
  const now = (options.now?.() ?? new Date()).toISOString();
  const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
  for (let attempt = 1;; attempt++) {
    try {
      const current = await api.patchEvent(pod.namespace, name, {
        message: text,
        lastTimestamp: now,
      }, signal);
      await api.patchEvent(pod.namespace, name, {
        metadata: { resourceVersion: current.metadata.resourceVersion },
        count: (current.count ?? 1) + 1,
      }, signal);
      return;
    } catch (error) {
      if (!(error instanceof KubeApiError) || attempt >= 3) throw error;
      if (error.status === 409) continue;
      if (error.status !== 404) throw error;
    }
    try {
      await api.createEvent(pod.namespace, newEvent(name, reason, text, now, options), signal);
      return;
    } catch (error) {
      // Created meanwhile (another cycle): count it instead.
      if (!(error instanceof KubeApiError) || error.status !== 409) throw error;
    }
  }
}

function newEvent(
  name: string,
  reason: string,
  message: string,
  now: string,
  options: PublishEventsOptions,
): KubeEvent {
  const { pod, node } = options;
  return {
    metadata: { name, namespace: pod.namespace },
    involvedObject: {
      apiVersion: "v1",
      kind: "Pod",
      name: pod.name,
      namespace: pod.namespace,
      ...(pod.uid ? { uid: pod.uid } : {}),
    },
    reason,
    message,
    type: "Warning",
    count: 1,
    firstTimestamp: now,
    lastTimestamp: now,
    source: { component: "image-prefetcher", host: node },
    reportingComponent: "image-prefetcher",
    reportingInstance: node,
  };
}

async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest).slice(0, 8)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Options for {@linkcode publishRunEvents}. */
export interface RunEventsOptions {
  /** The node. */
  node: string;
  /** The pod, or `undefined` when `POD_NAME` is not set. */
  pod?: PodRef;
  /** Where the service account's token and CA are. */
  serviceAccountDir: string;
  /** Where skipping or failing is logged. */
  logger: Logger;
  /** Stops writing. */
  signal?: AbortSignal;
  /** The environment, for `KUBERNETES_SERVICE_HOST`/`_PORT`. @default {Deno.env.toObject()} */
  env?: Record<string, string | undefined>;
}

/**
 * Writes a run's failure Events from inside the cluster; outside one (no API address, no service
 * account, no pod name) logs one line and writes nothing. Does nothing when nothing failed.
 */
export async function publishRunEvents(
  outcomes: ImageOutcome[],
  options: RunEventsOptions,
): Promise<PublishedEvents | undefined> {
  if (!outcomes.some((o) => o.status === "failed" && o.failure !== "interrupted")) return;
  const skip = (why: string) => {
    options.logger.info("Kubernetes Events about failed images skipped", { reason: why });
    return undefined;
  };
  if (!options.pod) return skip("POD_NAME is not set (not in a pod deployed by deploy.ts)");
  let client: KubeClient;
  try {
    const config = inClusterConfig(options.env ?? Deno.env.toObject(), options.serviceAccountDir);
    client = await KubeClient.create(config);
  } catch (error) {
    if (!(error instanceof InClusterConfigError) && !(error instanceof KubeApiError)) throw error;
    return skip(error.message);
  }
  using api = client;
  return await publishFailureEvents(outcomes, {
    api,
    pod: options.pod,
    node: options.node,
    logger: options.logger,
    signal: options.signal,
  });
}
