// The demo that ships with the page (scripts/demo-hub.ts): a tiny chat model and a small
// conversation data set, served from the page's own origin in the Hub's URL scheme, so a first
// visit trains and chats with no download from the Hub, and a cached page does so offline.
// Their ids read like Hub ids; requests for them go to this origin's demo Hub, never to the Hub.
export const DEMO_MODEL = 'built-in/tiny-chat';
export const DEMO_DATA = 'built-in/chat';

export const isBuiltIn = (id: string) => id.startsWith('built-in/');

/** The Hub endpoint the demo is served under (public/demo-hub). */
export const builtInEndpoint = () => new URL(`${import.meta.env.BASE_URL}demo-hub`, location.origin).href;
