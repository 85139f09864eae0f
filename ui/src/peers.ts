// Peers online, from the conductor's peer store: the signed agent infos the app websocket's
// `agentInfo` returns (kitsune2 JSON: an outer object whose `agentInfo` field is itself a
// JSON string naming the agent, its expiry and whether it left).

import { HoloHashType, hashFrom32AndType } from "@holochain/client";
import { hashToString, sameHash } from "./model";
import { type PeerView } from "./view";

function fromBase64Url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** One peer per agent (the newest info wins); tombstones and unreadable infos are
 *  skipped. `me` marks this dashboard's own agent. */
export function parseAgentInfos(infos: string[], me: Uint8Array): PeerView[] {
  const byAgent = new Map<string, PeerView & { createdAt: number }>();
  for (const raw of infos) {
    let inner: Record<string, unknown>;
    try {
      const outer = JSON.parse(raw) as Record<string, unknown>;
      inner = typeof outer.agentInfo === "string" ? JSON.parse(outer.agentInfo) : (outer as Record<string, unknown>);
    } catch {
      continue;
    }
    if (inner.isTombstone === true || typeof inner.agent !== "string") continue;
    let core: Uint8Array;
    try {
      core = fromBase64Url(inner.agent);
    } catch {
      continue;
    }
    if (core.length !== 32) continue;
    // The agent key: type prefix, the 32 core bytes, their DHT location.
    const key = hashFrom32AndType(core, HoloHashType.Agent);
    const agent = hashToString(key);
    const expiresAt = Number(inner.expiresAt) / 1000 || null; // µs -> ms
    const createdAt = Number(inner.createdAt) || 0;
    const prev = byAgent.get(agent);
    if (prev && prev.createdAt >= createdAt) continue;
    byAgent.set(agent, {
      agent,
      me: sameHash(key, me),
      expiresAt,
      createdAt,
    });
  }
  return [...byAgent.values()]
    .map(({ agent, me, expiresAt }) => ({ agent, me, expiresAt }))
    .sort((a, b) => Number(b.me) - Number(a.me) || a.agent.localeCompare(b.agent));
}
