/**
 * "Sign in with Hugging Face" for publishing: the Hub's OAuth (authorization code with PKCE, through
 * @huggingface/hub's oauthLoginUrl / oauthHandleRedirectIfPresent) in a pop-up window, so the studio
 * page (the merge just made, the folder it wrote) stays as it is. The pop-up comes back to
 * oauth-callback.html, which finishes the exchange and hands the token to this page over a
 * same-origin BroadcastChannel: never through a URL, storage or a log.
 *
 * Sign-in needs the client ID of an OAuth app registered on the Hub (its redirect URL:
 * `callbackUrl()`), from the build (`VITE_HF_OAUTH_CLIENT_ID`) or typed in the publish panel.
 */
import { oauthLoginUrl } from '@huggingface/hub';

export const OAUTH_CHANNEL = 'merge-studio-oauth';
/** Create repos and write to them; `openid profile` name the account. */
export const OAUTH_SCOPES = 'openid profile write-repos manage-repos';
/** localStorage key of a client ID typed in the panel. */
export const CLIENT_ID_STORAGE_KEY = 'merge-studio.oauth-client-id';

/** What the pop-up sends back: the token and the account, or why it failed. */
export type OAuthMessage =
  | { id: string; ok: true; accessToken: string; name: string; expiresAt: number }
  | { id: string; ok: false; message: string };

/** The state the pop-up needs from us (it comes back in the redirect's `state`). */
export interface OAuthState {
  id: string;
  hubUrl: string;
}

export function callbackUrl(): string {
  return new URL(`${import.meta.env.BASE_URL}oauth-callback.html`, location.origin).toString();
}

export function defaultClientId(): string {
  let typed: string | null = null;
  try {
    typed = localStorage.getItem(CLIENT_ID_STORAGE_KEY);
  } catch {
    // storage blocked: only the build's ID
  }
  return typed ?? ((import.meta.env.VITE_HF_OAUTH_CLIENT_ID as string | undefined) || '');
}

export class SignInError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignInError';
  }
}

/**
 * Open the sign-in pop-up and wait for its answer. Call it straight from a click: the window is opened
 * before anything is awaited, or browsers block it.
 */
export async function signInWithPopup(opts: { hubUrl: string; clientId: string; signal?: AbortSignal }): Promise<{ accessToken: string; name: string; expiresAt: number }> {
  if (opts.clientId.trim() === '') throw new SignInError('sign-in needs the client ID of a Hugging Face OAuth app');
  const popup = window.open('about:blank', 'merge-studio-sign-in', 'popup,width=520,height=720');
  if (!popup) throw new SignInError('the sign-in window was blocked: allow pop-ups for this page, or paste a token');
  const id = crypto.randomUUID();
  const channel = new BroadcastChannel(OAUTH_CHANNEL);
  try {
    const answer = new Promise<OAuthMessage>((resolve, reject) => {
      channel.onmessage = (ev: MessageEvent<OAuthMessage>) => {
        if (ev.data?.id === id) resolve(ev.data);
      };
      const onAbort = () => reject(opts.signal?.reason ?? new SignInError('sign-in cancelled'));
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
    const state: OAuthState = { id, hubUrl: opts.hubUrl };
    const url = await oauthLoginUrl({ hubUrl: opts.hubUrl, clientId: opts.clientId.trim(), scopes: OAUTH_SCOPES, redirectUrl: callbackUrl(), state: JSON.stringify(state) });
    popup.location.href = url;
    const message = await answer;
    if (!message.ok) throw new SignInError(`sign-in failed: ${message.message}`);
    return { accessToken: message.accessToken, name: message.name, expiresAt: message.expiresAt };
  } catch (err) {
    if (!popup.closed) popup.close();
    throw err;
  } finally {
    channel.close();
  }
}
