/**
 * `usernet up` / `usernet down` applied to the daemon: a compose plan
 * (compose.ts) checked against a copy of the state, then made real — all or
 * nothing.
 */
import { checkPlan, containerSpec, downPlan, type ComposePlan } from './compose.js';
import type { Daemon } from './daemon.js';
import { HttpError } from './http-error.js';
import type { Container, Network } from './model.js';

/**
 * `usernet up`: the whole plan is checked against a copy of the state
 * first (nothing changes on an error); then the project's old containers
 * go, missing networks and the containers are made; a failure while
 * bringing them up undoes everything this call made.
 */
export async function composeUp(d: Daemon, plan: ComposePlan): Promise<{ lines: string[] }> {
  // the request's shape is checked by api-schema.ts; its references here, before anything changes
  for (const pc of plan.containers) if (!containerSpec(pc, plan)) throw new HttpError(400, `${plan.file}: services.${pc.service}.network_mode: unknown service`);
  checkPlan(plan, d.state);
  const lines: string[] = [];
  const old = downPlan(plan.project, d.state, plan);
  for (const name of old.containers) {
    const c = d.state.findContainer(name);
    await d.bringDownContainer(c);
    d.state.removeContainer(c.id);
    lines.push(`Container ${name}  Removed`);
  }
  const madeNets: Network[] = [];
  const madeCtrs: Container[] = [];
  try {
    for (const n of plan.networks) {
      if (n.external || d.state.lookupNetwork(n.name)) continue;
      const net = n.spec.driver === 'overlay' && d.overlay ? await d.overlay.createNetwork(n.spec) : d.state.createNetwork(n.spec);
      madeNets.push(net);
      await d.bringUpNetwork(net);
      lines.push(`Network ${net.name}  Created`);
    }
    for (const pc of plan.containers) {
      const spec = containerSpec(pc, plan);
      if (!spec) throw new HttpError(400, `${plan.file}: services.${pc.service}.network_mode: unknown service`);
      let c = d.state.createContainer(spec);
      for (const a of pc.attachments.slice(1)) c = d.state.connect(a.network, c.id, { ip: a.ip, aliases: a.aliases }).container;
      madeCtrs.push(c);
      await d.bringUpContainer(c);
      lines.push(`Container ${c.name}  Started`);
    }
  } catch (e) {
    for (const c of madeCtrs.reverse()) {
      await d.bringDownContainer(c).catch(() => undefined);
      if (d.state.lookupContainer(c.id)) d.state.removeContainer(c.id);
    }
    for (const n of madeNets.reverse()) {
      d.runtime.removeNetwork(n.id, n.subnet ?? undefined);
      if (d.state.lookupNetwork(n.id)) d.state.removeNetwork(n.id);
      await d.overlay?.removeNetwork(n).catch(() => undefined);
    }
    d.persist();
    throw e;
  }
  d.persist();
  return { lines };
}

/** `usernet down`: the project's containers, then its networks (never external ones). */
export async function composeDown(d: Daemon, project: string, plan?: ComposePlan): Promise<{ lines: string[] }> {
  if (!project) throw new HttpError(400, 'no project name given');
  const gone = downPlan(project, d.state, plan);
  const lines: string[] = [];
  for (const name of gone.containers) {
    const c = d.state.findContainer(name);
    await d.bringDownContainer(c);
    d.state.removeContainer(c.id);
    lines.push(`Container ${name}  Removed`);
  }
  for (const name of gone.networks) {
    const n = d.state.removeNetwork(name);
    await d.overlay?.removeNetwork(n).catch((e) => d.log.warn({ network: n.name, err: (e as Error).message }, 'overlay network kept in the cluster'));
    d.runtime.removeNetwork(n.id, n.subnet ?? undefined);
    lines.push(`Network ${name}  Removed`);
  }
  d.persist();
  return { lines };
}
