// An async handler in an ES module: the invoker loads .mjs files with import().
import handlers from "./lib/handlers.js";

export async function handle(event, context) {
  if (event.type === "test.sleep") {
    console.error("sleeping");
    await new Promise((resolve) => setTimeout(resolve, event.data * 1000));
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
  return handlers.echo(event, context);
}
