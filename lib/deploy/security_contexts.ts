/**
 * What the containers of an instance may do: the security contexts, and the OpenShift SCCs the
 * pods ask for.
 *
 * @module
 */
import type { Instance, Json } from "./instance.ts";

/** The user of the distroless `nonroot` image; the non-root containers run as it. */
const NONROOT_UID = 65532;

/** The SCC that lets a pod mount the CRI-O socket's directory, run as root and set `spc_t`. */
export const OCP_PRIVILEGED_SCC = "privileged";

/** The default SCC of OpenShift 4.11+, pinned on the metrics pod so it gets no more. */
export const OCP_RESTRICTED_SCC = "restricted-v2";

/** Read-only root, no capabilities, no way to gain privileges: every container has this. */
export function lockedDown(): Json {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  };
}

/** A non-root container; on OpenShift the SCC assigns the user, elsewhere the image's. */
export function nonRoot(o: Instance): Json {
  return {
    ...lockedDown(),
    runAsNonRoot: true,
    ...(o.flavor === "vanilla" ? { runAsUser: NONROOT_UID, runAsGroup: NONROOT_UID } : {}),
  };
}
