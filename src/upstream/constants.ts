/** What CACHE_API_APP must be (the option table's wording, and fleet-credential.ts's errors'). */
export const GITHUB_APP_EXPECTED = "comma separated name=<app id>:<installation id>:<path to the app's PEM private key>"
