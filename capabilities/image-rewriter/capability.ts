import { Capability, a } from "pepr";

/** Rewrites Pod images to the node-local kuik proxy (issue 5 grows this into the full rule set). */
export const ImageRewriter = new Capability({
  name: "image-rewriter",
  description: "Rewrites Pod images to localhost:<proxy port>/<original> and records the originals",
});

const { When } = ImageRewriter;

// Pod admission: mark Pods that went through kuik's webhook.
When(a.Pod)
  .IsCreated()
  .Alias("rewrite-images")
  .Mutate(function markManaged(req) {
    req.SetLabel("kuik.enix.io/managed", "true");
  });
