// An async handler in an ES module: the invoker loads .mjs files with import().
import handlers from "./lib/handlers.js";

export async function handle(event, context) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return handlers.echo(event, context);
}
