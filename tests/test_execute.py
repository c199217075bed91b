"""The runner's kernel manager (bea_book.execute): a finished chapter's kernel is asked to shut
down without the interrupt jupyter_client sends first, which made ipykernel print
"KeyboardInterrupt caught in kernel" into the runner's output when the interrupt won the race."""
import asyncio

from jupyter_client import AsyncKernelManager

from bea_book import execute


def test_a_kernel_is_shut_down_without_an_interrupt_but_can_still_be_interrupted(monkeypatch):
    sent = []

    async def interrupt(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = execute._kernel_manager(ipc=False)(kernel_name="python3")
    manager.shutting_down = True  # as jupyter_client sets it in shutdown_kernel
    asyncio.run(manager._async_interrupt_kernel())
    assert sent == []
    manager.shutting_down = False  # a Ctrl-C while the chapter runs still interrupts it
    asyncio.run(manager._async_interrupt_kernel())
    assert sent == [False]
