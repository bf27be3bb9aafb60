/**
 * What `fetch` tells the Kubernetes API about its node after a run: the label saying whether
 * every image landed, and the removal of the startup taint. Each has its own bounded retries;
 * a failure is one log line and never changes the run's exit status.
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { inClusterConfig, SERVICE_ACCOUNT_DIR } from "./in_cluster.ts";
import { KubeClient, type NodeApi } from "./kube_client.ts";
import { labelNode } from "./node_label.ts";
import { formatTaint, removeTaint, type TaintSpec } from "./startup_taint.ts";

/** What to change on the node after the run (from `fetch`'s flags). */
export interface NodeUpdateSettings {
  /** Label key, `<prefix>/<instance>`, to set to `succeeded` or `failed`. */
  labelKey?: string;
  /** The startup taint to remove. */
  startupTaint?: TaintSpec;
  /** Where the service account's token and CA are. @default {SERVICE_ACCOUNT_DIR} */
  serviceAccountDir?: string;
}

/** How the run ended. */
export interface RunEnd {
  /** The node's name. */
  node: string;
  /** Every image is on the node and every line of the list was valid. */
  allOnNode: boolean;
  /** The run was stopped by a signal: updates get a short bound, and the taint stays. */
  interrupted: boolean;
  /** `--strict`: the taint stays unless every image is on the node. */
  strict: boolean;
}

/** What the updates need from their surroundings. */
export interface NodeUpdateContext {
  /** Where the outcome is logged. */
  logger: Logger;
  /** Time and waits. */
  clock: Clock;
  /** The API; by default a client of the in-cluster API server. */
  api?: NodeApi;
  /** The process environment, for `KUBERNETES_SERVICE_*`. @default {Deno.env} */
  env?: Record<string, string | undefined>;
  /** Cuts every call and wait (the run's time is up, or it was interrupted). */
  signal?: AbortSignal;
  /** No retry starts after this time of `clock` (the run's deadline), whatever the own bounds. */
  deadline?: number;
}

/**
 * Labels the node with the run's outcome, then removes the startup taint when the run allows it:
 * always after a finished run, except with `strict` when an image is missing (the node then stays
 * tainted and the failed init container is restarted by the kubelet, which runs `fetch` again);
 * never after an interrupted run. Says whether removing the taint was due and failed, so that
 * `fetch` can exit non-zero and be restarted to try again rather than leave the node tainted.
 */
export async function updateNodeAfterRun(
  settings: NodeUpdateSettings,
  end: RunEnd,
  context: NodeUpdateContext,
): Promise<{ taintRemovalFailed: boolean }> {
  const { logger, clock } = context;
  const own = clock.now() + (end.interrupted ? 2_000 : 30_000);
  const bound = {
    clock,
    deadline: Math.min(own, context.deadline ?? own),
    signal: context.signal,
  };
  let api = context.api;
  let client: KubeClient | undefined;
  try {
    if (!api) {
      const config = inClusterConfig(
        context.env ?? Deno.env.toObject(),
        settings.serviceAccountDir ?? SERVICE_ACCOUNT_DIR,
      );
      api = client = await KubeClient.create(config);
    }
  } catch (error) {
    logger.error("cannot reach the Kubernetes API; the node is not updated", {
      node: end.node,
      error: (error as Error).message,
    });
    const taintDue = settings.startupTaint !== undefined && !end.interrupted &&
      (end.allOnNode || !end.strict);
    return { taintRemovalFailed: taintDue };
  }
  try {
    if (settings.labelKey) await writeLabel(api, settings.labelKey, end, context, bound);
    const removed = settings.startupTaint
      ? await dropTaint(api, settings.startupTaint, end, context, bound)
      : true;
    return { taintRemovalFailed: !removed };
  } finally {
    client?.[Symbol.dispose]();
  }
}

async function writeLabel(
  api: NodeApi,
  key: string,
  end: RunEnd,
  { logger }: NodeUpdateContext,
  bound: { clock: Clock; deadline: number; signal?: AbortSignal },
): Promise<void> {
  const value = end.allOnNode ? "succeeded" : "failed";
  const label = `${key}=${value}`;
  try {
    await labelNode(api, end.node, key, value, {
      ...bound,
      onRetry: (error, attempt) =>
        logger.debug("retrying the node label", { node: end.node, attempt, error: String(error) }),
    });
    logger.info("node labelled", { node: end.node, label });
  } catch (error) {
    logger.error("could not label the node", {
      node: end.node,
      label,
      error: (error as Error).message,
    });
  }
}

async function dropTaint(
  api: NodeApi,
  taint: TaintSpec,
  end: RunEnd,
  { logger }: NodeUpdateContext,
  bound: { clock: Clock; deadline: number; signal?: AbortSignal },
): Promise<boolean> {
  const text = formatTaint(taint);
  if (end.interrupted) {
    logger.warn("the run was stopped; the startup taint stays", { node: end.node, taint: text });
    return true;
  }
  if (!end.allOnNode && end.strict) {
    logger.warn("some images are not on the node and --strict is set; the startup taint stays", {
      node: end.node,
      taint: text,
    });
    return true;
  }
  try {
    const result = await removeTaint(api, end.node, taint, bound);
    if (result === "absent") {
      logger.info("the node does not have the startup taint", { node: end.node, taint: text });
    } else if (end.allOnNode) {
      logger.info("startup taint removed: every image is on the node", {
        node: end.node,
        taint: text,
      });
    } else {
      logger.warn("startup taint removed although some images failed (no --strict)", {
        node: end.node,
        taint: text,
      });
    }
    return true;
  } catch (error) {
    logger.error("could not remove the startup taint; exiting 4 so the kubelet retries", {
      node: end.node,
      taint: text,
      error: (error as Error).message,
    });
    return false;
  }
}
