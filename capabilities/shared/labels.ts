/**
 * Every `kuik.*` / `kube-image-keeper.*` key kuik reads or writes: labels, annotations, finalizers, API group.
 * The values are kube-image-keeper v1's unless marked "kuik v2", so that pods and objects created by v1 keep
 * working. No other file may spell one of these strings.
 */

/** API group of kuik's custom resources. */
export const KUIK_GROUP = "kuik.enix.io";
/** API version of kuik's custom resources. */
export const KUIK_VERSION = "v1alpha1";

// --- Pods ---------------------------------------------------------------------------------------------------

/** Label set on every pod that went through kuik's webhook (value {@link MANAGED_VALUE}). */
export const LABEL_MANAGED = "kuik.enix.io/managed";
/** Value of {@link LABEL_MANAGED}. */
export const MANAGED_VALUE = "true";

/**
 * Annotation telling whether kuik rewrites this pod's images: `"true"` for pods created through the webhook,
 * `"false"` for pods that existed before kuik (their later UPDATEs are then never rewritten).
 */
export const ANNOTATION_REWRITE_IMAGES = "kuik.enix.io/rewrite-images";

/** Prefix of the annotation recording a container's original image: `original-image-<container>`. */
export const ANNOTATION_PREFIX_ORIGINAL_IMAGE = "original-image-";
/** Prefix of the annotation recording an init container's original image: `original-init-image-<container>`. */
export const ANNOTATION_PREFIX_ORIGINAL_INIT_IMAGE = "original-init-image-";
/**
 * (kuik v2) Prefix of the annotation recording an ephemeral container's original image. Short enough that the
 * SHA-1 fallback of long container names (40 hex) still fits the 63-character limit of annotation names
 * (`original-ephemeral-image-` + 40 would be 65).
 */
export const ANNOTATION_PREFIX_ORIGINAL_EPHEMERAL_IMAGE = "original-ephem-image-";

/** Opt-out label: pods carrying it with the value {@link IMAGE_CACHING_POLICY_IGNORE} are left alone. */
export const LABEL_IMAGE_CACHING_POLICY = "kube-image-keeper.enix.io/image-caching-policy";
/** Value of {@link LABEL_IMAGE_CACHING_POLICY} that opts a pod out. */
export const IMAGE_CACHING_POLICY_IGNORE = "ignore";

// --- CachedImage and Repository ------------------------------------------------------------------------------

/**
 * Label on CachedImages naming their Repository: the sanitised repository name, or its SHA-224 when longer than
 * 63 characters (see `repositoryLabel` in object-names.ts; always select with that function, never by object name).
 */
export const LABEL_REPOSITORY = "kuik.enix.io/repository";

/** Annotation that forces a re-check (and re-copy when the upstream digest changed) of a CachedImage. */
export const ANNOTATION_FORCE_UPDATE = "cachedimage.kuik.enix.io/forceUpdate";
/** Value of {@link ANNOTATION_FORCE_UPDATE} that triggers the refresh. */
export const FORCE_UPDATE_VALUE = "true";

/** Finalizer removing the image from the cache registry before a CachedImage goes away. */
export const FINALIZER_CACHED_IMAGE = "cachedimage.kuik.enix.io/finalizer";
/** kube-image-keeper v1's Repository finalizer: kuik never adds it, and removes it from a Repository being deleted. */
export const FINALIZER_REPOSITORY = "repository.kuik.enix.io/finalizer";
