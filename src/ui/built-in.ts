// Where the page serves its built-in demo (src/hub/built-in.ts): public/demo-hub, on its own
// origin, so a first visit trains and chats with no download from the Hub, and a cached page
// does so offline.
export { DEMO_DATA, DEMO_MODEL, isBuiltIn } from '../hub/built-in';

/** The Hub endpoint the demo is served under (public/demo-hub). */
export const builtInEndpoint = () => new URL(`${import.meta.env.BASE_URL}demo-hub`, location.origin).href;
