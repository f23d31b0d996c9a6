// Where the browser tests find the app (vite preview of the build) and the local test Hub.
export const APP_PORT = 4173;
export const HUB_PORT = 4174;
export const HUB = `http://127.0.0.1:${HUB_PORT}`;
