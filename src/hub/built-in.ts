// The demo that ships with the page (scripts/demo-hub.ts): a tiny chat model and a small
// conversation data set, served from the page's own origin in the Hub's URL scheme. Their ids
// read like Hub ids, but they are not on the Hub: requests for them go to the page's own demo
// Hub (src/ui/built-in.ts), and nothing made from them names them as Hub repos.
export const DEMO_MODEL = 'built-in/tiny-chat';
export const DEMO_DATA = 'built-in/chat';

export const isBuiltIn = (id: string) => id.startsWith('built-in/');
