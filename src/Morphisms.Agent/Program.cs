using System.Runtime.InteropServices;
using Morphisms.Agent;
using Morphisms.Agent.App;
using Morphisms.Agent.Tls;

// First of all, before the agent makes its key, takes a token or starts the app (which runs as the same user): from
// here on the app cannot read this process's environment or memory through /proc or ptrace (see NonDumpable).
var dumpableFailure = NonDumpable.Apply();

// Before anything starts TLS: the agent trusts nothing of the OS's certificate store (see SystemTrustStore).
SystemTrustStore.Hide();

// SIGTERM (and Ctrl-C) start a drain: forwarded to the app, which gets the drain timeout to finish.
using var stop = new CancellationTokenSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stop.Cancel(); });
using var stderr = Morphisms.Agent.Telemetry.AgentLog.LineAtomic(Console.OpenStandardError());
return await AgentCli.RunAsync(args, Console.Out, stderr, stop.Token, dumpableFailure);
