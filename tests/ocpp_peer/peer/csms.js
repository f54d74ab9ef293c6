// An independent, strict OCPP 1.6J central system for the tests in tests/ocpp_peer.
//
// ocpp-rpc's RPCServer in strictMode validates every CALL and CALLRESULT in both directions
// against the official OCPP 1.6 JSON schemas. This script is driven over stdin/stdout, one JSON
// object per line:
//
//   stdout  {"event":"listening","port":P}               once, when the server listens
//           {"event":"connected","identity":ID,"protocol":"ocpp1.6"}
//           {"event":"disconnected","identity":ID}
//           {"event":"message","identity":ID,"outbound":B,"message":RAW}   every frame
//           {"event":"call","identity":ID,"action":A,"params":P}           every CALL received
//           {"event":"strictValidationFailure","identity":ID,"outbound":B,"method":M,
//            "isCall":B,"error":TEXT}                   any schema failure, either direction
//           {"event":"badMessage","identity":ID,"error":TEXT}
//           {"event":"result","ref":R,"result":X} / {"event":"error","ref":R,"code":C,
//            "message":TEXT}                            the answer to a "call" command
//   stdin   {"cmd":"call","ref":R,"identity":ID,"method":M,"params":P}   send a CALL
//           {"cmd":"raw","identity":ID,"frame":TEXT}                       send any text frame
//           {"cmd":"authorize","idTag":T,"idTagInfo":INFO}  what Authorize.conf answers for T
//           {"cmd":"boot","status":S,"interval":N}          what BootNotification.conf answers
//
// Unknown id tags are Accepted. EOF on stdin closes the server and ends the process.
//
// `--port N` listens on N (a peer started again where the last one was).
// `node csms.js --protocol ocpp2.0.1` serves OCPP 2.0.1 instead (strictMode against the official
// 2.0.1 schemas); "authorize" then sets the idTokenInfo answered for an idToken.
'use strict';

const readline = require('readline');
const { RPCServer } = require('ocpp-rpc');

const clients = new Map();
const tagInfo = new Map();
let boot = { status: 'Accepted', interval: 300 };
let nextTransactionId = 1;

function say(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorText(error) {
    if (!error) return '';
    return String(error.message || error) + (error.details ? ' ' + JSON.stringify(error.details) : '');
}

function infoFor(idTag) {
    return tagInfo.get(String(idTag).toLowerCase()) || { status: 'Accepted' };
}

function now() {
    return new Date().toISOString();
}

const protocolArg = process.argv.indexOf('--protocol');
const PROTOCOL = protocolArg > 0 ? process.argv[protocolArg + 1] : 'ocpp1.6';

const server = new RPCServer({
    protocols: [PROTOCOL],
    strictMode: true,
    pingIntervalMs: 0, // the station's own WebSocketPingInterval is under test, not ours
});

server.on('client', (client) => {
    const identity = client.identity;
    clients.set(identity, client);
    say({ event: 'connected', identity, protocol: client.protocol });

    client.on('message', ({ message, outbound }) => {
        say({ event: 'message', identity, outbound, message: String(message) });
    });
    client.on('strictValidationFailure', (ev) => {
        say({
            event: 'strictValidationFailure',
            identity,
            outbound: ev.outbound,
            isCall: ev.isCall,
            method: ev.method,
            error: errorText(ev.error),
        });
    });
    client.on('badMessage', ({ error }) => {
        say({ event: 'badMessage', identity, error: errorText(error) });
    });
    client.on('close', () => {
        if (clients.get(identity) === client) clients.delete(identity);
        say({ event: 'disconnected', identity });
    });

    const handle = (action, answer) => {
        client.handle(action, ({ params }) => {
            say({ event: 'call', identity, action, params });
            return answer(params);
        });
    };
    if (client.protocol === 'ocpp2.0.1') {
        handle201(handle);
        return;
    }
    handle('BootNotification', () => ({ status: boot.status, currentTime: now(), interval: boot.interval }));
    handle('Heartbeat', () => ({ currentTime: now() }));
    handle('StatusNotification', () => ({}));
    handle('MeterValues', () => ({}));
    handle('Authorize', (p) => ({ idTagInfo: infoFor(p.idTag) }));
    handle('StartTransaction', (p) => ({ transactionId: nextTransactionId++, idTagInfo: infoFor(p.idTag) }));
    handle('StopTransaction', () => ({}));
    handle('DataTransfer', () => ({ status: 'UnknownVendorId' }));
    handle('FirmwareStatusNotification', () => ({}));
    handle('DiagnosticsStatusNotification', () => ({}));
});

// OCPP 2.0.1: what a CSMS answers to every CALL a charging station may send here.
function handle201(handle) {
    handle('BootNotification', () => ({ status: boot.status, currentTime: now(), interval: boot.interval }));
    handle('Heartbeat', () => ({ currentTime: now() }));
    handle('StatusNotification', () => ({}));
    handle('Authorize', (p) => ({ idTokenInfo: infoFor(p.idToken.idToken) }));
    handle('TransactionEvent', (p) => (p.idToken ? { idTokenInfo: infoFor(p.idToken.idToken) } : {}));
    handle('MeterValues', () => ({}));
    handle('NotifyEvent', () => ({}));
    handle('NotifyReport', () => ({}));
    handle('ReportChargingProfiles', () => ({}));
    handle('FirmwareStatusNotification', () => ({}));
    handle('LogStatusNotification', () => ({}));
    handle('SecurityEventNotification', () => ({}));
    handle('DataTransfer', () => ({ status: 'UnknownVendorId' }));
}

async function command(line) {
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (err) {
        say({ event: 'commandError', error: `not JSON: ${line}` });
        return;
    }
    if (cmd.cmd === 'authorize') {
        tagInfo.set(String(cmd.idTag).toLowerCase(), cmd.idTagInfo);
        say({ event: 'ack', ref: cmd.ref ?? null });
        return;
    }
    if (cmd.cmd === 'boot') {
        boot = { status: cmd.status, interval: cmd.interval };
        say({ event: 'ack', ref: cmd.ref ?? null });
        return;
    }
    const client = clients.get(cmd.identity);
    if (!client) {
        say({ event: 'error', ref: cmd.ref ?? null, code: 'NoClient', message: `no station ${cmd.identity}` });
        return;
    }
    if (cmd.cmd === 'raw') {
        client.sendRaw(cmd.frame);
        say({ event: 'ack', ref: cmd.ref ?? null });
        return;
    }
    if (cmd.cmd === 'call') {
        try {
            const result = await client.call(cmd.method, cmd.params, { callTimeoutMs: cmd.timeoutMs ?? 10000 });
            say({ event: 'result', ref: cmd.ref, result });
        } catch (err) {
            say({ event: 'error', ref: cmd.ref, code: err.rpcErrorCode || err.name || 'Error', message: errorText(err) });
        }
        return;
    }
    say({ event: 'commandError', error: `unknown command ${cmd.cmd}` });
}

async function main() {
    const portArg = process.argv.indexOf('--port');
    const http = await server.listen(portArg > 0 ? Number(process.argv[portArg + 1]) : 0, '127.0.0.1');
    say({ event: 'listening', port: http.address().port });
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => { command(line); });
    rl.on('close', async () => {
        await server.close({ force: true });
        process.exit(0);
    });
}

main().catch((err) => {
    process.stderr.write(`csms.js: ${errorText(err)}\n`);
    process.exit(1);
});
