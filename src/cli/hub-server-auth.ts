/**
 * Users and sign-in for the local Hub server: access tokens from a users list, `whoami-v2`, and the
 * Hub's OAuth (OpenID configuration, authorization code with PKCE S256, token, userinfo). The local
 * authorize endpoint asks nothing: it signs in `oauthUser` at once and redirects back, which is what
 * a user who clicks "Authorize" on the Hub gets. Who may read private repos and write where is
 * decided here. Tokens are compared, never logged.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bearerToken, HttpError } from './hub-server-http.ts';
import type { RepoSnapshot } from './hub-server-repos.ts';

export interface HubUser {
  /** The account name: the namespace of its repos. */
  name: string;
  /** Its access token (`Authorization: Bearer <token>`). */
  token: string;
  /** Organizations it is a member of (it may write there). */
  orgs?: string[];
  fullname?: string;
  /** What its access token may do. @default 'write' */
  role?: 'read' | 'write';
}

/** Who made a request, and what they may do. */
export interface Principal {
  user: HubUser;
  via: 'token' | 'oauth';
  /** Write files to repos of the user's namespaces. */
  write: boolean;
  /** Create repos there. */
  create: boolean;
  scope?: string;
  expiresAt?: number;
}

/** OAuth scopes the Hub knows that grant what we check. */
const WRITE_SCOPE = 'write-repos';
const MANAGE_SCOPE = 'manage-repos';
const CODE_TTL_MS = 60_000;
const TOKEN_TTL_S = 8 * 3600;

interface PendingCode {
  user: HubUser;
  challenge: string;
  redirectUri: string;
  scope: string;
  expiresAt: number;
}

function base64url(bytes: Buffer): string {
  return bytes.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function checkUsers(list: unknown): HubUser[] {
  if (!Array.isArray(list)) throw new TypeError('users must be a JSON list of {name, token, orgs?, role?}');
  const seen = new Set<string>();
  return list.map((u: unknown, i) => {
    const user = u as Partial<HubUser> | null;
    if (!user || typeof user.name !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(user.name)) throw new TypeError(`user ${i}: "name" must be a Hub account name`);
    if (typeof user.token !== 'string' || user.token.length < 8) throw new TypeError(`user ${user.name}: "token" must be a string of 8 characters or more`);
    if (seen.has(user.token)) throw new TypeError(`user ${user.name}: two users have the same token`);
    seen.add(user.token);
    if (user.orgs !== undefined && !(Array.isArray(user.orgs) && user.orgs.every((o) => typeof o === 'string'))) {
      throw new TypeError(`user ${user.name}: "orgs" must be a list of names`);
    }
    if (user.role !== undefined && user.role !== 'read' && user.role !== 'write') throw new TypeError(`user ${user.name}: "role" must be read or write`);
    return { name: user.name, token: user.token, orgs: user.orgs ?? [], fullname: user.fullname, role: user.role ?? 'write' };
  });
}

export class HubAuth {
  readonly #users: HubUser[];
  readonly #oauthUser: HubUser | undefined;
  readonly #codes = new Map<string, PendingCode>();
  readonly #oauthTokens = new Map<string, Principal>();

  constructor(users: readonly HubUser[], oauthUser?: string) {
    this.#users = [...users];
    this.#oauthUser = oauthUser === undefined ? this.#users[0] : this.#users.find((u) => u.name === oauthUser);
    if (oauthUser !== undefined && !this.#oauthUser) throw new TypeError(`oauthUser ${oauthUser} is not among the users`);
  }

  /** The signed-in principal of a request, or null (anonymous, or a token we do not know). */
  principal(req: IncomingMessage): Principal | null {
    const token = bearerToken(req);
    if (token === undefined) return null;
    const user = this.#users.find((u) => u.token === token);
    if (user) return { user, via: 'token', write: user.role !== 'read', create: user.role !== 'read' };
    const oauth = this.#oauthTokens.get(token);
    if (oauth && (oauth.expiresAt ?? Infinity) > Date.now()) return oauth;
    return null;
  }

  /** Whether the request carries a token this server does not know (answered 401 where one is needed). */
  hasUnknownToken(req: IncomingMessage): boolean {
    return bearerToken(req) !== undefined && this.principal(req) === null;
  }

  static owns(user: HubUser, namespace: string): boolean {
    return user.name === namespace || (user.orgs ?? []).includes(namespace);
  }

  canRead(repo: RepoSnapshot, who: Principal | null): boolean {
    if (repo.privateReaders === null) return true;
    if (!who) return false;
    return HubAuth.owns(who.user, repo.id.split('/')[0]) || repo.privateReaders.includes(who.user.name);
  }

  /**
   * Throw the Hub's answer when the repo is private and the request may not read it: 401 without a
   * (known) token, 404 with one (the Hub does not say that a repo it hides exists).
   */
  checkRead(req: IncomingMessage, repo: RepoSnapshot): void {
    const who = this.principal(req);
    if (this.canRead(repo, who)) return;
    if (!who) throw new HttpError(401, `Repository not found: ${repo.id} (private: sign in with a token that can read it)`, 'RepoNotFound');
    throw new HttpError(404, `Repository not found: ${repo.id}`, 'RepoNotFound');
  }

  /** The principal that may `action` in `namespace`, or the Hub's refusal. */
  checkWrite(req: IncomingMessage, namespace: string, action: 'create' | 'write'): Principal {
    const who = this.principal(req);
    if (!who) throw new HttpError(401, bearerToken(req) ? 'Invalid credentials in Authorization header' : 'You must be authenticated to do this: give an access token');
    if (!(action === 'create' ? who.create : who.write)) {
      const need = who.via === 'oauth' ? `the OAuth scope "${action === 'create' ? MANAGE_SCOPE : WRITE_SCOPE}"` : 'a token with the write role';
      throw new HttpError(403, `This ${who.via === 'oauth' ? 'sign-in' : 'token'} cannot ${action === 'create' ? 'create repos' : 'write to repos'}: it needs ${need}`);
    }
    if (!HubAuth.owns(who.user, namespace)) {
      throw new HttpError(403, `You don't have the rights to ${action === 'create' ? 'create a model under' : 'write to repos of'} the namespace "${namespace}"`);
    }
    return who;
  }

  whoami(req: IncomingMessage): Record<string, unknown> {
    const who = this.principal(req);
    if (!who) throw new HttpError(401, 'Invalid user token.');
    const u = who.user;
    return {
      type: 'user',
      id: pseudoId(u.name),
      name: u.name,
      fullname: u.fullname ?? u.name,
      email: `${u.name}@localhost`,
      emailVerified: true,
      isPro: false,
      canPay: false,
      avatarUrl: '',
      periodEnd: null,
      billingMode: 'postpaid',
      orgs: (u.orgs ?? []).map((o) => ({ type: 'org', id: pseudoId(o), name: o, fullname: o, email: null, canPay: false, avatarUrl: '', periodEnd: null })),
      auth:
        who.via === 'oauth'
          ? { type: 'access_token', accessToken: { displayName: 'oauth', role: who.write ? 'write' : 'read' }, expiresAt: new Date(who.expiresAt ?? 0).toISOString() }
          : { type: 'access_token', accessToken: { displayName: 'local', role: u.role ?? 'write', createdAt: new Date(0).toISOString() } },
    };
  }

  openidConfiguration(baseUrl: string): Record<string, unknown> {
    return {
      issuer: baseUrl,
      authorization_endpoint: `${baseUrl}/oauth/authorize`,
      token_endpoint: `${baseUrl}/oauth/token`,
      userinfo_endpoint: `${baseUrl}/oauth/userinfo`,
      jwks_uri: `${baseUrl}/oauth/jwks`,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: ['openid', 'profile', 'email', 'read-repos', WRITE_SCOPE, MANAGE_SCOPE],
    };
  }

  /** GET /oauth/authorize: check the request, sign in the OAuth user, and give the redirect back with a code. */
  authorize(url: URL): string {
    const p = url.searchParams;
    const redirectUri = p.get('redirect_uri');
    if (!redirectUri || !/^https?:\/\//.test(redirectUri)) throw new HttpError(400, 'redirect_uri must be an http(s) URL');
    if (!p.get('client_id')) throw new HttpError(400, 'client_id is missing');
    if (p.get('response_type') !== 'code') throw new HttpError(400, 'response_type must be "code"');
    const challenge = p.get('code_challenge');
    if (!challenge || p.get('code_challenge_method') !== 'S256') throw new HttpError(400, 'PKCE is required: code_challenge with code_challenge_method=S256');
    const scope = p.get('scope') ?? '';
    if (!scope.split(/\s+/).includes('openid')) throw new HttpError(400, 'scope must include "openid"');
    if (!this.#oauthUser) throw new HttpError(400, 'this server has no users to sign in (start it with users)');
    const code = base64url(randomBytes(24));
    this.#codes.set(code, { user: this.#oauthUser, challenge, redirectUri, scope, expiresAt: Date.now() + CODE_TTL_MS });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    const state = p.get('state');
    if (state !== null) back.searchParams.set('state', state);
    return back.toString();
  }

  /** POST /oauth/token (authorization_code grant): the code, once, with the verifier of its challenge. */
  token(form: URLSearchParams): Record<string, unknown> {
    const fail = (message: string) => new HttpError(400, message, undefined, {});
    if (form.get('grant_type') !== 'authorization_code') throw fail('grant_type must be authorization_code');
    const code = form.get('code') ?? '';
    const pending = this.#codes.get(code);
    this.#codes.delete(code);
    if (!pending || pending.expiresAt < Date.now()) throw fail('invalid_grant: the code is unknown, used or expired');
    if (form.get('redirect_uri') !== pending.redirectUri) throw fail('invalid_grant: redirect_uri differs from the authorize request');
    const verifier = form.get('code_verifier') ?? '';
    if (base64url(createHash('sha256').update(verifier).digest()) !== pending.challenge) throw fail('invalid_grant: code_verifier does not match the code_challenge');
    const scopes = pending.scope.split(/\s+/);
    const accessToken = `hf_oauth_${base64url(randomBytes(24))}`;
    const expiresAt = Date.now() + TOKEN_TTL_S * 1000;
    this.#oauthTokens.set(accessToken, {
      user: pending.user,
      via: 'oauth',
      write: scopes.includes(WRITE_SCOPE) || scopes.includes(MANAGE_SCOPE),
      create: scopes.includes(MANAGE_SCOPE),
      scope: pending.scope,
      expiresAt,
    });
    return { access_token: accessToken, token_type: 'bearer', expires_in: TOKEN_TTL_S, scope: pending.scope, id_token: '' };
  }

  userinfo(req: IncomingMessage): Record<string, unknown> {
    const who = this.principal(req);
    if (!who || who.via !== 'oauth') throw new HttpError(401, 'userinfo needs an OAuth access token');
    const u = who.user;
    return {
      sub: pseudoId(u.name),
      name: u.fullname ?? u.name,
      preferred_username: u.name,
      picture: '',
      profile: '',
      isPro: false,
      orgs: (u.orgs ?? []).map((o) => ({ sub: pseudoId(o), name: o, preferred_username: o, picture: '' })),
    };
  }
}

function pseudoId(name: string): string {
  return createHash('sha1').update(`user\0${name}`).digest('hex').slice(0, 24);
}
