import { describe, expect, it } from 'vitest';
import { State } from './model.js';
import { networkMode, parseParent, validateParentOptions } from './parent-options.js';

describe('macvlan/ipvlan options', () => {
  it('parses IFACE and IFACE.VLAN', () => {
    expect(parseParent('eth1')).toEqual({ iface: 'eth1', vlan: 0 });
    expect(parseParent('eth1.100')).toEqual({ iface: 'eth1', vlan: 100 });
    expect(parseParent('br-lan.4094')).toEqual({ iface: 'br-lan', vlan: 4094 });
    expect(() => parseParent('eth1.0')).toThrow('invalid option parent="eth1.0": VLAN id must be from 1 to 4094');
    expect(() => parseParent('eth1.4095')).toThrow('VLAN id must be from 1 to 4094');
    expect(() => parseParent('a/b')).toThrow('invalid option parent="a/b": not an interface name');
    expect(() => parseParent('waytoolonginterfacename')).toThrow('not an interface name');
  });

  it('validates modes, unknown keys and the required parent', () => {
    expect(() => validateParentOptions('macvlan', { parent: 'eth1' })).not.toThrow();
    expect(() => validateParentOptions('macvlan', { parent: 'eth1', macvlan_mode: 'vepa' })).not.toThrow();
    expect(() => validateParentOptions('ipvlan', { parent: 'eth1', ipvlan_mode: 'l3s' })).not.toThrow();
    expect(() => validateParentOptions('macvlan', {})).toThrow("macvlan networks need -o parent=IFACE");
    expect(() => validateParentOptions('macvlan', { parent: 'eth1', macvlan_mode: 'l2' })).toThrow(
      'invalid option macvlan_mode="l2": must be one of bridge, private, vepa, passthru',
    );
    expect(() => validateParentOptions('ipvlan', { parent: 'eth1', ipvlan_mode: 'bridge' })).toThrow('invalid option ipvlan_mode="bridge": must be one of l2, l3, l3s');
    expect(() => validateParentOptions('ipvlan', { parent: 'eth1', macvlan_mode: 'bridge' })).toThrow('unknown option "macvlan_mode" for driver ipvlan');
    expect(() => validateParentOptions('macvlan', { parent: 'eth1', 'com.docker.network.driver.mtu': '9' })).toThrow('must be an integer from 68 to 65535');
  });

  it('in the model: one network per parent and VLAN, modes default as Docker', () => {
    const s = new State({ supportedDrivers: ['bridge', 'macvlan', 'ipvlan'] });
    const a = s.createNetwork({ name: 'a', driver: 'macvlan', subnet: '10.60.0.0/24', options: { parent: 'eth1' } });
    const b = s.createNetwork({ name: 'b', driver: 'macvlan', subnet: '10.61.0.0/24', options: { parent: 'eth1.100' } });
    const c = s.createNetwork({ name: 'c', driver: 'ipvlan', subnet: '10.62.0.0/24', options: { parent: 'eth2' } });
    expect([networkMode(a), networkMode(b), networkMode(c)]).toEqual(['bridge', 'bridge', 'l2']);
    const before = s.toJSON();
    expect(() => s.createNetwork({ name: 'd', driver: 'ipvlan', subnet: '10.63.0.0/24', options: { parent: 'eth1.100' } })).toThrow('parent eth1.100 is already used by network b');
    expect(s.toJSON()).toEqual(before);
  });
});
