// The connection to the agent's conductor: the app websocket, zome calls, signals and the
// peer store. Works in a launcher (hc-spin, `hc launch`, `mycelix-fl dashboard`): the
// launcher environment names the app interface and token; zome calls are signed by the
// host when it offers a signer, or with credentials the page was given.

import {
  AppWebsocket,
  type CellId,
  type RoleNameCallZomeRequest,
  SignalType,
  setSigningCredentials,
} from "@holochain/client";
import { hashToString } from "./model";
import { type PeerView } from "./view";
import { parseAgentInfos } from "./peers";

/** The role and zome the dashboard talks to. */
export const ROLE = "federated_learning";
export const ZOME = "federated_learning";

/** Signing credentials a server injected as `window.__MYCELIX_FL_SIGNING__`
 *  (byte arrays as JSON number arrays). */
export interface InjectedSigning {
  dnaHash: number[];
  agentPubKey: number[];
  capSecret: number[];
  seed: number[];
  publicKey: number[];
  signingKey: number[];
}

declare global {
  interface Window {
    __HC_LAUNCHER_ENV__?: {
      APP_INTERFACE_PORT?: number;
      INSTALLED_APP_ID?: string;
      APP_INTERFACE_TOKEN?: number[] | Uint8Array;
    };
    __MYCELIX_FL_SIGNING__?: InjectedSigning;
  }
}

/** What the rest of the page uses. */
export interface Connection {
  url: string;
  /** This agent's key, as `hashToString` writes it. */
  agent: string;
  agentLabel: string;
  call<T>(fn: string, payload: unknown): Promise<T>;
  onEvent(cb: (payload: unknown) => void): void;
  onClose(cb: (why: string) => void): void;
  peers(): Promise<PeerView[]>;
}

/** Installs injected credentials for the cell they were issued for. */
export function installSigning(s: InjectedSigning): CellId {
  const cellId: CellId = [new Uint8Array(s.dnaHash), new Uint8Array(s.agentPubKey)];
  const privateKey = new Uint8Array(64);
  privateKey.set(s.seed, 0);
  privateKey.set(s.publicKey, 32);
  setSigningCredentials(cellId, {
    capSecret: new Uint8Array(s.capSecret),
    keyPair: { privateKey, publicKey: new Uint8Array(s.publicKey), keyType: "ed25519" },
    signingKey: new Uint8Array(s.signingKey),
  } as unknown as Parameters<typeof setSigningCredentials>[1]);
  return cellId;
}

/** Connects as the launcher environment says; a clear error when there is none. */
export async function connect(): Promise<Connection> {
  const env = window.__HC_LAUNCHER_ENV__;
  if (!env?.APP_INTERFACE_PORT) {
    throw new Error(
      "no conductor connection details: open this page through `mycelix-fl dashboard`, `hc launch` or hc-spin, which provide them",
    );
  }
  const url = `ws://localhost:${env.APP_INTERFACE_PORT}`;
  let client: AppWebsocket;
  try {
    client = await AppWebsocket.connect({ defaultTimeout: 60_000 });
  } catch (e) {
    throw new Error(`cannot connect to the app interface at ${url}: ${(e as Error)?.message ?? e}`);
  }
  if (window.__MYCELIX_FL_SIGNING__) installSigning(window.__MYCELIX_FL_SIGNING__);
  const me = client.myPubKey;
  const closeHandlers: ((why: string) => void)[] = [];
  const ws = (client as unknown as { client?: { socket?: WebSocket } }).client?.socket;
  ws?.addEventListener("close", (e) => closeHandlers.forEach((h) => h(e.reason || `code ${e.code}`)));
  return {
    url,
    agent: hashToString(me),
    agentLabel: hashToString(me).slice(5, 13),
    call: <T>(fn: string, payload: unknown) =>
      client.callZome({ role_name: ROLE, zome_name: ZOME, fn_name: fn, payload } as RoleNameCallZomeRequest) as Promise<T>,
    onEvent: (cb) =>
      client.on("signal", (signal) => {
        if (signal.type === SignalType.App && signal.value.zome_name === ZOME) cb(signal.value.payload);
      }),
    onClose: (cb) => closeHandlers.push(cb),
    peers: async () => parseAgentInfos(await client.agentInfo({ dna_hashes: null }), me),
  };
}
