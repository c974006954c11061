export { ImageRewriter } from "./image-rewriter/capability";
