using System.Runtime.InteropServices;
using Morphisms.Agent;
using Morphisms.Agent.Tls;

// Before anything starts TLS: the agent trusts nothing of the OS's certificate store (see SystemTrustStore).
SystemTrustStore.Hide();

// SIGTERM (and Ctrl-C) start a drain: forwarded to the app, which gets the drain timeout to finish.
using var stop = new CancellationTokenSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stop.Cancel(); });
using var stderr = Morphisms.Agent.Telemetry.AgentLog.LineAtomic(Console.OpenStandardError());
return await AgentCli.RunAsync(args, Console.Out, stderr, stop.Token);
