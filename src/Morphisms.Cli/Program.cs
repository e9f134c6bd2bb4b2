using Morphisms.Cli;

return await MorphCli.RunAsync(args, Console.Out, Console.Error);
