/**
 * The page the Hub's OAuth sends the sign-in pop-up back to (oauth-callback.html): it exchanges the
 * code for a token (PKCE, @huggingface/hub's oauthHandleRedirectIfPresent), hands the token to the
 * studio page over the same-origin BroadcastChannel, takes the code out of the address, and closes.
 */
import { oauthHandleRedirectIfPresent } from '@huggingface/hub';
import { checkHubEndpoint } from '../hub-endpoint.ts';
import { OAUTH_CHANNEL, type OAuthMessage, type OAuthState } from './oauth.ts';

/** Our part of the redirect's `state` (the library wraps it with its nonce). */
function ourState(search: string): OAuthState | null {
  try {
    const outer = JSON.parse(new URLSearchParams(search).get('state') ?? '') as { state?: string };
    const inner = JSON.parse(outer.state ?? '') as Partial<OAuthState>;
    return typeof inner.id === 'string' && typeof inner.hubUrl === 'string' ? { id: inner.id, hubUrl: inner.hubUrl } : null;
  } catch {
    return null;
  }
}

async function finish(): Promise<void> {
  const status = document.getElementById('status')!;
  const state = ourState(location.search);
  const channel = new BroadcastChannel(OAUTH_CHANNEL);
  const send = (message: OAuthMessage) => channel.postMessage(message);
  try {
    if (!state) throw new Error('this page was opened without a sign-in in progress');
    const endpoint = checkHubEndpoint(state.hubUrl);
    if ('problem' in endpoint) throw new Error(`the Hub address of the sign-in is not usable: ${endpoint.problem}`);
    const result = await oauthHandleRedirectIfPresent({ hubUrl: endpoint.url });
    if (!result) throw new Error('the Hub sent no sign-in code back (was the page reloaded?)');
    send({ id: state.id, ok: true, accessToken: result.accessToken, name: result.userInfo.preferred_username, expiresAt: result.accessTokenExpiresAt.getTime() });
    status.textContent = `Signed in as ${result.userInfo.preferred_username}. You can close this window.`;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (state) send({ id: state.id, ok: false, message });
    status.textContent = `Sign-in failed: ${message}`;
  } finally {
    // The code is spent; do not leave it in the address or the history.
    history.replaceState(null, '', location.pathname);
    channel.close();
  }
  window.close();
}

void finish();
